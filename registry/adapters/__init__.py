"""Adapter and base-model inspection as plain data: configs and safetensors headers, no torch."""
