"""The staff UI's static files (core/http/http_static.c, docs/ui.md): served from
[loketd] web_dir for every GET/HEAD path no route owns, with their types, ETag/304,
caching, the strict Content-Security-Policy, and never a byte from outside web_dir."""
import os

import pytest

from conftest import SRCDIR, Loketd

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
       "form-action 'self'; frame-ancestors 'none'")
SECRET = b"SECRET-OUTSIDE-WEB-DIR"

TYPES = {
    "page.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "mod.mjs": "text/javascript; charset=utf-8",
    "site.css": "text/css; charset=utf-8",
    "logo.svg": "image/svg+xml",
    "logo.png": "image/png",
    "favicon.ico": "image/x-icon",
    "data.json": "application/json",
    "font.woff2": "font/woff2",
    "notes.txt": "text/plain; charset=utf-8",
    "blob.bin": "application/octet-stream",
}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A loketd whose web_dir holds one file per type, a folder, vendor files, symlinks in
    and out, and a secret file beside web_dir that must never be served."""
    top = tmp_path_factory.mktemp("static")
    web = top / "web"
    web.mkdir()
    (top / "secret.txt").write_bytes(SECRET)
    (top / "outside").mkdir()
    (top / "outside" / "secret.txt").write_bytes(SECRET)
    (web / "index.html").write_bytes(b"<!doctype html><title>aanmelden</title>")
    for name in TYPES:
        (web / name).write_bytes(b"content of " + name.encode())
    (web / "sub").mkdir()
    (web / "sub" / "page.txt").write_bytes(b"in a folder")
    (web / "withindex").mkdir()
    (web / "withindex" / "index.html").write_bytes(b"<p>folder page</p>")
    (web / "vendor").mkdir()
    (web / "vendor" / "lib.js").write_bytes(b"export const x = 1;")
    (web / ".hidden").write_bytes(SECRET)
    (web / "api").mkdir()
    (web / "api" / "x.txt").write_bytes(SECRET)
    (web / "loket").mkdir()
    (web / "loket" / "index.html").write_bytes(SECRET)
    (web / "big.bin").write_bytes(b"x" * (4 * 1024 * 1024 + 1))
    os.symlink(str(top / "secret.txt"), str(web / "link-file.txt"))
    os.symlink(str(top / "outside"), str(web / "link-dir"))
    os.symlink(str(web / "notes.txt"), str(web / "inside-link.txt"))
    (top / "daemon").mkdir()
    d = Loketd(top / "daemon", loketd_conf={"web_dir": str(web)})
    d.start()
    d.web = web
    yield d
    assert d.stop() == 0, d.log()
    d.close()


def get(d, path, method="GET", headers=None):
    return d.request(method, path, headers=headers or {})


def assert_not_found_problem(status, headers, body):
    assert status == 404, (status, body)
    assert headers["Content-Type"] == "application/problem+json", headers
    assert SECRET not in body


def test_each_extension_has_its_content_type(site):
    for name, ctype in TYPES.items():
        status, headers, body = get(site, "/" + name)
        assert status == 200, (name, status, body)
        assert headers["Content-Type"] == ctype, (name, headers["Content-Type"])
        assert body == b"content of " + name.encode()


def test_root_is_index_html_and_a_folder_is_its_index(site):
    status, headers, body = get(site, "/")
    assert (status, body) == (200, b"<!doctype html><title>aanmelden</title>")
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    status, _, body = get(site, "/withindex/")
    assert (status, body) == (200, b"<p>folder page</p>")


def test_folders_are_never_listed(site):
    for path in ("/sub", "/sub/", "/withindex", "/vendor/"):
        status, headers, body = get(site, path)
        assert_not_found_problem(status, headers, body)
        assert b"page.txt" not in body and b"lib.js" not in body


def test_a_missing_file_is_a_404_problem(site):
    status, headers, body = get(site, "/nergens.html")
    assert_not_found_problem(status, headers, body)
    assert b"no such file" in body


def test_etag_answers_304_until_the_file_changes(site):
    status, headers, body = get(site, "/notes.txt")
    etag = headers["ETag"]
    assert status == 200 and etag.startswith('"') and etag.endswith('"')
    status, headers304, body = get(site, "/notes.txt", headers={"If-None-Match": etag})
    assert (status, body) == (304, b"")
    assert headers304["ETag"] == etag
    status, _, _ = get(site, "/notes.txt", headers={"If-None-Match": '"other", W/' + etag})
    assert status == 304, "a weak validator in a list also matches"
    status, _, body = get(site, "/notes.txt", headers={"If-None-Match": '"stale"'})
    assert (status, body) == (200, b"content of notes.txt")
    path = site.web / "notes.txt"
    path.write_bytes(b"changed content")
    try:
        status, headers, body = get(site, "/notes.txt", headers={"If-None-Match": etag})
        assert (status, body) == (200, b"changed content"), "a changed file is sent again"
        assert headers["ETag"] != etag
    finally:
        path.write_bytes(b"content of notes.txt")


def test_pages_are_revalidated_and_vendor_files_cached(site):
    _, headers, _ = get(site, "/")
    assert headers["Cache-Control"] == "no-cache"
    _, headers, _ = get(site, "/app.js")
    assert headers["Cache-Control"] == "no-cache"
    _, headers, _ = get(site, "/vendor/lib.js")
    assert headers["Cache-Control"] == "public, max-age=3600"


def test_every_answer_carries_the_strict_policy(site):
    """Static files, their 404s, the API (answer and problem) and /healthz."""
    for method, path, token in (("GET", "/", None), ("GET", "/nergens.js", None),
                                ("GET", "/healthz", None), ("GET", "/api/v1/contacts", None),
                                ("POST", "/api/v1/contacts", None)):
        status, headers, _ = site.request(method, path, body=b"{}" if method == "POST" else None,
                                          headers={"Content-Type": "application/json"})
        assert headers["Content-Security-Policy"] == CSP, (path, status)
        assert headers["X-Content-Type-Options"] == "nosniff", path
        assert headers["Referrer-Policy"] == "same-origin", path


def test_api_answers_are_never_cached(site):
    token = site.add_token("t-static", "admin")
    for method, path, hdrs in (("GET", "/api/v1/contacts", {"Authorization": "Bearer " + token}),
                               ("GET", "/api/v1/contacts", {}),
                               ("GET", "/api/v1/nergens", {"Authorization": "Bearer " + token}),
                               ("GET", "/api/v1/contacts?limit=abc",
                                {"Authorization": "Bearer " + token})):
        status, headers, _ = site.request(method, path, headers=hdrs)
        assert headers["Cache-Control"] == "no-store", (path, status)


@pytest.mark.parametrize("path", [
    "/../secret.txt",
    "/%2e%2e/secret.txt",
    "/%2E%2E/secret.txt",
    "/%2e%2e%2fsecret.txt",
    "/..%2fsecret.txt",
    "/sub/../../secret.txt",
    "/sub/%2e%2e/%2e%2e/secret.txt",
    "/%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "/./secret.txt",
    "/..\\secret.txt",
    "/%5c..%5csecret.txt",
    "/%252e%252e/secret.txt",
    "/notes.txt%00.html",
    "/%00",
    "/link-file.txt",
    "/link-dir/secret.txt",
    "/.hidden",
    "/api/x.txt",
    "/loket/",
    "/loket",
    "//api/x.txt",
])
def test_nothing_outside_web_dir_is_served(site, path):
    status, headers, body = get(site, path)
    assert status in (400, 404), (path, status, body)
    assert headers["Content-Type"] == "application/problem+json", (path, headers)
    assert SECRET not in body, path
    assert b"root:" not in body, path


def test_a_symlink_inside_web_dir_is_served(site):
    status, _, body = get(site, "/inside-link.txt")
    assert (status, body) == (200, b"content of notes.txt")


def test_head_has_get_headers_and_no_body(site):
    status, headers, body = get(site, "/page.html")
    status_h, headers_h, body_h = get(site, "/page.html", method="HEAD")
    assert (status_h, body_h) == (200, b"")
    assert headers_h["Content-Length"] == str(len(body))
    for key in ("Content-Type", "ETag", "Cache-Control", "Content-Security-Policy"):
        assert headers_h[key] == headers[key], key
    status_h, _, body_h = get(site, "/nergens.html", method="HEAD")
    assert (status_h, body_h) == (404, b"")


def test_only_get_and_head_reach_files(site):
    status, headers, body = site.request("POST", "/page.html", body=b"x")
    assert status == 404 and SECRET not in body


def test_an_oversized_file_is_refused(site):
    status, headers, body = get(site, "/big.bin")
    assert status == 500 and headers["Content-Type"] == "application/problem+json"
    assert len(body) < 1000


def test_the_source_tree_web_dir_serves_the_ui(tmp_path):
    """What `make run` and scripts/run serve: the repository's web/ with the sign-in page
    and the vendored Preact + htm module."""
    d = Loketd(tmp_path, loketd_conf={"web_dir": os.path.join(SRCDIR, "web")})
    d.start()
    try:
        status, headers, body = d.request("GET", "/")
        assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
        assert b"<script" in body and b'type="module"' in body
        status, headers, body = d.request("GET", "/vendor/preact-htm.module.js")
        assert status == 200 and headers["Content-Type"] == "text/javascript; charset=utf-8"
        assert headers["Cache-Control"] == "public, max-age=3600"
        assert b"export{" in body
    finally:
        assert d.stop() == 0, d.log()
        d.close()
