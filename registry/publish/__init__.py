"""Publishing merged models: to a folder, an S3 prefix or a Hugging Face Hub repo.

Nothing here imports boto3 or huggingface_hub until a publisher of that kind is opened.
"""

from registry.publish.base import (
    BUILTIN_PUBLISHERS,
    ENTRY_POINT_GROUP,
    Published,
    Publisher,
    open_publisher,
    parse_target,
    publisher_class,
)

__all__ = ["BUILTIN_PUBLISHERS", "ENTRY_POINT_GROUP", "Published", "Publisher", "open_publisher", "parse_target",
           "publisher_class"]
