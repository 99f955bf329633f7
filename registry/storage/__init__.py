"""The content-addressed artifact store: blobs named by sha256 on local disk or S3.

Nothing here imports boto3 until an S3 store is opened.
"""

from registry.storage.base import BlobInfo, BlobStore, open_store, store_class
from registry.storage.cache import cache_path, materialize
from registry.storage.digest import check_digest, hash_stream, sha256_file
from registry.storage.local import LocalBlobStore

__all__ = [
    "BlobInfo",
    "BlobStore",
    "LocalBlobStore",
    "cache_path",
    "check_digest",
    "hash_stream",
    "materialize",
    "open_store",
    "sha256_file",
    "store_class",
]
