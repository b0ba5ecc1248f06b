"""open_store: backend selection by URI, options, lazy imports, install hints."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import mlreg.storage
from mlreg.errors import InputError
from mlreg.storage import LocalStore, MemoryStore, open_store


def test_relative_path_resolves_against_the_registry_root_with_relative_uris(tmp_path, make_file):
    store = open_store(".mlreg-store", base_dir=tmp_path)
    assert isinstance(store, LocalStore)
    assert store.root == tmp_path / ".mlreg-store"
    assert store.root_uri == ".mlreg-store"
    obj = store.put_file(make_file(b"m"), "models/m/1/model.bin")
    assert obj.uri == ".mlreg-store/models/m/1/model.bin"  # portable across clones
    assert (tmp_path / ".mlreg-store/models/m/1/model.bin").read_bytes() == b"m"
    # the absolute forms name the same object
    assert store.key_for(f"file://{tmp_path}/.mlreg-store/models/m/1/model.bin") == "models/m/1/model.bin"
    assert store.key_for(f"{tmp_path}/.mlreg-store/models/m/1/model.bin") == "models/m/1/model.bin"


def test_nested_relative_store_paths_are_normalised(tmp_path):
    store = open_store("./examples//store/", base_dir=tmp_path)
    assert store.root_uri == "examples/store"
    assert store.root == tmp_path / "examples" / "store"
    with pytest.raises(InputError, match="registry root itself"):
        open_store(".", base_dir=tmp_path)


def test_absolute_paths_and_file_uris_give_file_uris(tmp_path):
    for location in (str(tmp_path / "s"), f"file://{tmp_path}/s", f"file://localhost{tmp_path}/s"):
        store = open_store(location, base_dir="/elsewhere")
        assert isinstance(store, LocalStore) and store.root == tmp_path / "s"
        assert store.uri_for("a/b") == f"file://{tmp_path}/s/a/b"


def test_relative_path_without_base_dir_uses_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = open_store("store")
    assert store.root == tmp_path / "store" and store.root_uri == f"file://{tmp_path}/store"


def test_the_example_registry_store_verifies_against_its_records():
    """Registry-relative URIs are exactly what the example records hold."""
    yaml = pytest.importorskip("yaml")
    root = Path(__file__).resolve().parents[2]
    records = sorted((root / "models").glob("*/*.yaml"))
    store = open_store("examples/store", base_dir=root)
    checked = 0
    for record_path in records:
        record = yaml.safe_load(record_path.read_text())
        for artifact in (record or {}).get("artifacts") or []:
            uri = artifact.get("uri", "")
            if uri.startswith("examples/store/"):
                assert store.hash_object(uri) == (artifact["sha256"], artifact["size"]), uri
                checked += 1
    if not checked:
        pytest.skip("no example records with artifacts in examples/store")


def test_memory_stores_are_shared_by_name():
    MemoryStore.forget("open-test")
    a = open_store("memory://open-test")
    b = open_store("memory://open-test/")
    assert a is b and a.root_uri == "memory://open-test"
    assert open_store("memory://other-name") is not a
    MemoryStore.forget("open-test")


def test_unknown_options_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="unknown option"):
        open_store(str(tmp_path), endpoint_url="http://x")
    with pytest.raises(InputError, match="unknown option"):
        open_store("memory://x", fsync=False)
    with pytest.raises(InputError, match="retries"):
        open_store(str(tmp_path), retries=-1)


def test_bad_locations(tmp_path):
    with pytest.raises(InputError, match="empty"):
        open_store("")
    with pytest.raises(InputError, match="unknown store protocol 'nosuchproto://'"):
        open_store("nosuchproto://bucket/x")
    with pytest.raises(InputError, match="needs a path"):
        open_store("file://")


def test_missing_s3fs_gives_an_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "s3fs", None)  # makes `import s3fs` raise ImportError
    with pytest.raises(InputError) as err:
        open_store("s3://bucket/prefix")
    assert "pip install 'mlreg[s3]'" in str(err.value)
    assert err.value.exit_code == 2


def test_missing_fsspec_implementation_gives_an_install_hint():
    try:
        import gcsfs  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("gcsfs is installed")
    with pytest.raises(InputError, match="pip install gcsfs"):
        open_store("gs://bucket/prefix")


def test_importing_the_package_does_not_import_remote_backends():
    code = (
        "import sys, mlreg.storage\n"
        "heavy = [m for m in ('fsspec', 's3fs', 'botocore', 'boto3', 'aiobotocore') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_remote_store_classes_are_available_lazily():
    assert mlreg.storage.FsspecStore.__name__ == "FsspecStore"
    pytest.importorskip("s3fs")
    assert mlreg.storage.S3Store.__name__ == "S3Store"
    with pytest.raises(AttributeError):
        mlreg.storage.NoSuchThing  # noqa: B018
