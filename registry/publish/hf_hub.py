"""hf://org/repo[@revision]: one commit to a Hugging Face Hub model repo through huggingface_hub.

The repo is created if needed, private unless `private=False` (the publish target decides,
registry/targets.py), and the branch for a revision other than main; all files go in one commit,
so the repo moves from the old checkpoint to the new one at once. The token comes from
huggingface_hub's usual settings (HF_TOKEN, the stored login); the endpoint from
settings.hf_endpoint (else huggingface_hub's, HF_ENDPOINT).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from registry.errors import IntegrityFailure, InvalidInput, RegistryError, StorageError, Unauthorized
from registry.publish.base import Progress, Published, plan


class HubPublisher:
    kind = "hf"

    def __init__(self, repo_id: str, revision: str | None = None, *, endpoint: str | None = None,
                 token: str | None = None, private: bool = True):
        self.repo_id, self.revision = repo_id, revision
        self.endpoint, self.token, self.private = endpoint, token, private

    @classmethod
    def from_uri(cls, uri: str, *, settings=None) -> HubPublisher:
        rest = uri.partition("://")[2].strip("/")
        repo, _, rev = rest.partition("@")
        if repo.count("/") != 1 or not all(repo.split("/")):
            raise InvalidInput(f"{uri}: name a repo as hf://org/repo[@revision]")
        return cls(repo, rev or None, endpoint=getattr(settings, "hf_endpoint", None))

    def publish(self, folder: Path, *, progress: Progress | None = None) -> Published:
        """Create the repo if needed and commit every file at once. Returns the commit id as revision."""
        return self.publish_hashed(folder, None, progress=progress)

    def publish_hashed(self, folder: Path, files: dict[str, tuple[str, int]] | None, *,
                       progress: Progress | None = None) -> Published:
        """`publish`, told each file's sha256 and size ({relative path: (sha256, size)}, as the catalog
        records them and the caller checked): the LFS uploads are keyed by those, so huggingface_hub
        does not read a file to hash it (where it hashes lazily, UploadInfo.is_hashed: 2.4.0 here).

        Raises:
            IntegrityFailure: a file's size differs from the one given
            Unauthorized, StorageError: the Hub refused or failed
        """
        from huggingface_hub import HfApi
        from huggingface_hub.errors import HfHubHTTPError

        order, digest = plan(folder)
        api = HfApi(endpoint=self.endpoint, token=self.token)
        branch = self.revision or "main"
        try:
            api.create_repo(self.repo_id, repo_type="model", exist_ok=True, private=self.private)
            if branch != "main":
                api.create_branch(self.repo_id, branch=branch, repo_type="model", exist_ok=True)
            if progress:
                progress("commit", 0, len(order))
            ops = [_addition(Path(folder), rel, (files or {}).get(rel)) for rel in order]
            api.preupload_lfs_files(self.repo_id, additions=ops, repo_type="model", revision=branch)
            info = api.create_commit(self.repo_id, operations=ops, repo_type="model", revision=branch,
                                     commit_message=f"Publish merged model (manifest {digest[:12]})",
                                     commit_description=f"manifest.json sha256: {digest}")
            if progress:
                progress("commit", len(order), len(order))
        except HfHubHTTPError as e:
            raise _translate(e, self.repo_id) from e
        return Published(f"hf://{self.repo_id}@{branch}", info.oid, digest, len(order))


def _addition(folder: Path, rel: str, known: tuple[str, int] | None) -> Any:
    """A CommitOperationAdd for `folder/rel`; with `known` (sha256, size) its upload info carries that
    digest, so huggingface_hub never reads the file to hash it (it reads 512 bytes of sample)."""
    from huggingface_hub import CommitOperationAdd

    op = CommitOperationAdd(path_in_repo=rel, path_or_fileobj=str(folder / rel))
    if known is None:
        return op
    sha, size = known
    info = op.upload_info
    if info.size != size:
        raise IntegrityFailure(f"{rel} has {info.size} bytes, the catalog records {size}", file=rel)
    if getattr(info, "is_hashed", True) is False:  # it hashes lazily (UploadInfo.is_hashed): give it ours
        info.sha256 = bytes.fromhex(sha)
    return op


def _translate(e, repo_id: str) -> RegistryError:
    status = getattr(getattr(e, "response", None), "status_code", None)
    if status in (401, 403):
        return Unauthorized(f"the Hub refused {repo_id}: {status}", repo=repo_id,
                            hint="log in with `hf auth login` or set HF_TOKEN")
    return StorageError(f"publishing to the Hub repo {repo_id} failed: {str(e).splitlines()[0]}", repo=repo_id)
