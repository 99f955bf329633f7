import json
import pickle

from registry.adapters.training import read_pickle_state, training_metadata


class Evil:
    def __reduce__(self):
        import os

        return (os.system, ("touch /tmp/adapter-registry-pwned",))


def test_training_args_are_read_without_unpickling(tmp_path):
    import torch
    from transformers import TrainingArguments

    args = TrainingArguments(output_dir=str(tmp_path), learning_rate=3e-4, num_train_epochs=2,
                             per_device_train_batch_size=8, lr_scheduler_type="cosine", report_to=[])
    torch.save(args, tmp_path / "training_args.bin")
    meta = training_metadata(tmp_path)
    assert meta["args"]["learning_rate"] == 3e-4
    assert meta["args"]["per_device_train_batch_size"] == 8
    assert meta["args"]["lr_scheduler_type"] == "cosine"
    assert meta["args_class"].endswith("TrainingArguments")


def test_a_hostile_pickle_is_never_executed(tmp_path):
    import os

    marker = "/tmp/adapter-registry-pwned"
    if os.path.exists(marker):
        os.remove(marker)
    p = tmp_path / "training_args.bin"
    p.write_bytes(pickle.dumps({"x": Evil(), "learning_rate": 1.0}))
    state = read_pickle_state(p)
    assert not os.path.exists(marker)
    assert state["learning_rate"] == 1.0


def test_trainer_state_gives_the_loss_curve(tmp_path):
    (tmp_path / "trainer_state.json").write_text(json.dumps(
        {"global_step": 3,
         "log_history": [{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.5}, {"step": 3, "eval_loss": 1.0}]}))
    meta = training_metadata(tmp_path)
    assert meta["loss_curve"] == [[1, 2.0], [2, 1.5]] and meta["global_step"] == 3
