"""Data snapshot identity: digests for local data, versions/ETags for objects, partitions."""

from __future__ import annotations

import hashlib

import pytest

from mlreg.errors import InputError
from mlreg.lineage.datasets import identify_dataset, parse_partitions
from mlreg.records import violations
from mlreg.storage import digest_tree


class FakeObjectStore:
    """The slice of an fsspec file system that identity probing uses, answering like s3fs."""

    def __init__(self, objects: dict[str, dict], error: BaseException | None = None) -> None:
        self.objects = objects
        self.error = error

    def _strip_protocol(self, uri: str) -> str:
        return uri.split("://", 1)[1].rstrip("/")

    def info(self, path: str, **kw) -> dict:
        if self.error is not None:
            raise self.error
        if path in self.objects:
            return {"type": "file", "name": path, **self.objects[path]}
        if any(k.startswith(path + "/") for k in self.objects):
            return {"type": "directory", "name": path, "size": 0}
        raise FileNotFoundError(path)

    def find(self, path: str, detail: bool = False, maxdepth=None) -> dict:
        return {k: {"type": "file", "name": k, **v} for k, v in self.objects.items()
                if k.startswith(path + "/")}


def valid_as_dataset(entry: dict) -> bool:
    rec_data = {"data": [{"role": "train", **entry}]}
    return not [v for v in violations(rec_data, "record") if v.path.startswith("$.data")]


def test_local_file_is_its_content_digest(tmp_path):
    f = tmp_path / "train.csv"
    f.write_text("a,b\n1,2\n3,4\n")
    entry = identify_dataset(str(f))
    assert entry == {"uri": str(f), "immutable": True,
                     "sha256": hashlib.sha256(f.read_bytes()).hexdigest(),
                     "size": f.stat().st_size, "rows": 2}
    assert valid_as_dataset(entry)


def test_relative_paths_resolve_against_base_dir(tmp_path):
    (tmp_path / "x.jsonl").write_text('{"a": 1}\n{"a": 2}\n{"a": 3}')
    entry = identify_dataset("x.jsonl", base_dir=str(tmp_path))
    assert entry["uri"] == str(tmp_path / "x.jsonl") and entry["rows"] == 3


def test_local_folder_is_its_manifest_digest(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path / "snap"
    (folder / "part=1").mkdir(parents=True)
    pq.write_table(pa.table({"x": list(range(10))}), folder / "part=1" / "a.parquet")
    pq.write_table(pa.table({"x": list(range(5))}), folder / "b.parquet")
    entry = identify_dataset(str(folder))
    tree = digest_tree(folder)
    assert entry["sha256"] == tree.digest and entry["files"] == 2
    assert entry["size"] == tree.total_size and entry["rows"] == 15  # parquet footers
    assert entry["immutable"] is True and valid_as_dataset(entry)


def test_missing_local_data_is_not_immutable(tmp_path):
    entry = identify_dataset(str(tmp_path / "gone.csv"))
    assert entry["immutable"] is False and "no such file or folder" in entry["reason"]
    assert valid_as_dataset(entry)


@pytest.mark.parametrize("uri, partitions", [
    ("s3://lake/fraud/txns/dt=2024-01-10/", {"dt": "2024-01-10"}),
    ("s3://lake/fraud/txns/dt=2024-01-10..2024-01-24/", {"dt": "2024-01-10..2024-01-24"}),
    ("gs://lake/events/year=2024/month=01/day=10/part-0.parquet",
     {"year": "2024", "month": "01", "day": "10"}),
    ("s3://lake/fraud/txns/latest/", {}),
])
def test_partition_values(uri, partitions):
    assert parse_partitions(uri) == partitions


def test_a_partition_uri_is_immutable_by_its_partitions():
    entry = identify_dataset("s3://lake/fraud/txns/dt=2024-01-10..2024-01-24/", probe=False,
                             rows=48_113_902)
    assert entry == {"uri": "s3://lake/fraud/txns/dt=2024-01-10..2024-01-24/", "immutable": True,
                     "rows": 48_113_902, "partitions": {"dt": "2024-01-10..2024-01-24"}}
    mutable = identify_dataset("s3://lake/x/dt=2024-01-10/", probe=False,
                               partitions_immutable=False)
    assert mutable["immutable"] is False and "reason" in mutable


def test_versioned_object_is_immutable():
    fs = FakeObjectStore({"lake/eval.parquet": {"size": 1234, "ETag": '"9f0e1d"',
                                                "VersionId": "3HL4kqtJlcpX"}})
    entry = identify_dataset("s3://lake/eval.parquet", fs=fs)
    assert entry == {"uri": "s3://lake/eval.parquet", "immutable": True,
                     "version_id": "3HL4kqtJlcpX", "etag": "9f0e1d", "size": 1234}
    assert valid_as_dataset(entry)


def test_an_etag_alone_is_not_proof_unless_the_caller_asserts_it():
    fs = FakeObjectStore({"lake/val.csv": {"size": 99, "ETag": '"abc123"'}})
    entry = identify_dataset("s3://lake/val.csv", fs=fs)
    assert entry["immutable"] is False and entry["etag"] == "abc123" and entry["size"] == 99
    assert "no version id" in entry["reason"]
    asserted = identify_dataset("s3://lake/val.csv", fs=fs, etag_immutable=True)
    assert asserted["immutable"] is True and "reason" not in asserted
    assert valid_as_dataset(entry) and valid_as_dataset(asserted)


def test_a_prefix_is_identified_by_its_listing():
    objects = {"lake/snap/a.parquet": {"size": 10, "ETag": '"e1"', "VersionId": "v1"},
               "lake/snap/b.parquet": {"size": 20, "ETag": '"e2"', "VersionId": "v2"}}
    entry = identify_dataset("s3://lake/snap/", fs=FakeObjectStore(objects))
    assert entry["immutable"] is True and entry["files"] == 2 and entry["size"] == 30
    assert entry["snapshot_id"].startswith("listing-sha256:")
    objects["lake/snap/b.parquet"]["ETag"] = '"changed"'
    again = identify_dataset("s3://lake/snap/", fs=FakeObjectStore(objects))
    assert again["snapshot_id"] != entry["snapshot_id"]
    del objects["lake/snap/a.parquet"]["VersionId"]
    unversioned = identify_dataset("s3://lake/snap/", fs=FakeObjectStore(objects))
    assert unversioned["immutable"] is False and "some objects" in unversioned["reason"]


def test_version_in_the_uri_and_caller_facts_count():
    entry = identify_dataset("s3://lake/eval.parquet?versionId=abc", probe=False)
    assert entry["immutable"] is True and entry["version_id"] == "abc"
    fs = FakeObjectStore({"lake/eval.parquet": {"size": 5, "ETag": '"x"'}})
    pinned = identify_dataset("s3://lake/eval.parquet?versionId=abc", fs=fs)
    assert pinned["version_id"] == "abc" and pinned["immutable"] is True
    snap = identify_dataset("feast://fraud/txn_stats", snapshot_id="2024-01-24T00:00Z")
    assert snap["immutable"] is True and snap["snapshot_id"] == "2024-01-24T00:00Z"


def test_an_unreachable_store_becomes_the_reason():
    fs = FakeObjectStore({}, error=ConnectionRefusedError(111, "Connection refused"))
    entry = identify_dataset("s3://lake/eval.parquet", fs=fs)
    assert entry["immutable"] is False
    assert entry["reason"] == "could not read the snapshot's identity: connection refused"


def test_a_plain_url_without_proof():
    entry = identify_dataset("https://data.example.com/latest.csv", probe=False)
    assert entry["immutable"] is False and "prove" in entry["reason"]
    forced = identify_dataset(__file__, immutable=False, reason="regenerated nightly")
    assert forced["immutable"] is False and forced["reason"] == "regenerated nightly"


def test_credentials_never_reach_a_record():
    with pytest.raises(InputError, match="credential"):
        identify_dataset("https://data.example.com/x.csv?X-Amz-Signature=abc", probe=False)
    with pytest.raises(InputError):
        identify_dataset("s3://key:secret@lake/x.csv", probe=False)
