"""MovieLens download against a local http.server (never the internet)."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import http.server
import io
import os
import threading
import zipfile
from pathlib import Path

import pytest

from seqrec_jax.data import download
from seqrec_jax.data.sources import read_movielens_100k

U_DATA = b"196\t242\t3\t881250949\n186\t302\t3\t891717742\n"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
  hits: list[str] = []

  def do_GET(self):  # noqa: N802 (http.server naming)
    _QuietHandler.hits.append(self.path)
    super().do_GET()

  def log_message(self, *args):
    pass


@contextlib.contextmanager
def serve(folder: Path):
  """An HTTP server on 127.0.0.1 (free port) serving `folder`; yields its base URL."""
  handler = functools.partial(_QuietHandler, directory=str(folder))
  server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
  thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
  thread.start()
  try:
    yield f"http://127.0.0.1:{server.server_address[1]}/"
  finally:
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def make_zip(folder: Path) -> str:
  """Writes a tiny fake ml-100k.zip into `folder`; returns its sha256."""
  buf = io.BytesIO()
  with zipfile.ZipFile(buf, "w") as zf:
    zf.writestr("ml-100k/u.data", U_DATA)
    zf.writestr("ml-100k/u.item", "242|Kolya (1996)|24-Jan-1997||http://x\n")
    zf.writestr("other/ignored.txt", "not extracted")
  data = buf.getvalue()
  (folder / "ml-100k.zip").write_bytes(data)
  return hashlib.sha256(data).hexdigest()


def test_download_verify_extract_then_offline(tmp_path):
  served, cache = tmp_path / "served", tmp_path / "cache"
  served.mkdir()
  digest = make_zip(served)
  _QuietHandler.hits.clear()
  with serve(served) as url:
    path = download.ensure_movielens("ml-100k", str(cache), base_url=url,
                                     checksums={"ml-100k": digest})
  assert _QuietHandler.hits == ["/ml-100k.zip"]
  assert path == str(cache / "ml-100k" / "u.data")
  assert Path(path).read_bytes() == U_DATA
  assert len(read_movielens_100k(path)) == 2
  assert sorted(os.listdir(cache)) == ["ml-100k"]  # no temp files, nothing outside ml-100k/
  # Second call: the server is gone, so any network access would fail.
  again = download.ensure_movielens("ml-100k", str(cache), base_url=url,
                                    checksums={"ml-100k": digest})
  assert again == path and _QuietHandler.hits == ["/ml-100k.zip"]


def test_checksum_mismatch_deletes_download(tmp_path):
  served, cache = tmp_path / "served", tmp_path / "cache"
  served.mkdir()
  actual = make_zip(served)
  wrong = "0" * 64
  with serve(served) as url:
    with pytest.raises(download.ChecksumError) as e:
      download.ensure_movielens("ml-100k", str(cache), base_url=url,
                                checksums={"ml-100k": wrong})
  msg = str(e.value)
  assert f"{url}ml-100k.zip" in msg and wrong in msg and actual in msg
  assert os.listdir(cache) == []  # temp file deleted, nothing extracted


def test_pinned_checksum_is_used_by_default(tmp_path):
  served, cache = tmp_path / "served", tmp_path / "cache"
  served.mkdir()
  make_zip(served)  # not the real archive, so the pinned digest must reject it
  with serve(served) as url:
    with pytest.raises(download.ChecksumError, match=download.ARCHIVES["ml-100k"].sha256):
      download.ensure_movielens("ml-100k", str(cache), base_url=url)


def test_no_fetch_and_unknown_name(tmp_path):
  with pytest.raises(FileNotFoundError, match="fetch=False"):
    download.ensure_movielens("ml-1m", str(tmp_path), fetch=False)
  with pytest.raises(ValueError, match="ml-100k"):
    download.ensure_movielens("ml-2m", str(tmp_path))


def test_unreachable_server(tmp_path):
  with serve(tmp_path) as url:  # serves nothing: 404
    with pytest.raises(OSError, match="could not download"):
      download.ensure_movielens("ml-1m", str(tmp_path / "c"), base_url=url)
  assert os.listdir(tmp_path / "c") == []
