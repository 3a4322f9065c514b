"""!chkimg on a real minidump: code captured in the dump against the store's image file."""

from bugcheck.commands.chkimg import loader_rewrite, relocations
from bugcheck.commands.session import Session
from bugcheck.symbols.pe import PeImage
from corpus import corpus_file, dump


def _session():
    import bugcheck

    d = bugcheck.open(dump("rizin-triage_x64.dmp"))
    return Session(
        d,
        sympath=str(corpus_file("symstore")),
        offline=True,
        symbols_dir=str(corpus_file("symbols", "isf")),
    )


def test_relocations_parse_real_image():
    img = PeImage.from_file(corpus_file("symstore", "amdppm.sys", "c9c030003b000", "amdppm.sys"))
    fix = relocations(img)
    assert fix and all(w == 8 for _, w in fix)
    assert all(0 < rva < img.size_of_image for rva, _ in fix)


def test_loader_import_rewrites_are_not_errors():
    img = PeImage.from_file(corpus_file("symstore", "amdppm.sys", "c9c030003b000", "amdppm.sys"))
    assert loader_rewrite(img, 0, b"\xe8\x7f\x89\x03\x00\x90", b"\xff\x15\xf6\x89\x01\x00")
    assert loader_rewrite(img, 0, b"\x01\x02", b"\x03\x04") is None


def test_chkimg_amdppm_counts_only_unexplained_differences():
    s = _session()
    (res,) = s.run("!chkimg -d amdppm")
    d = res.data
    assert d["image_found"] and d["checked_bytes"] > 5000
    # the loader's import-call rewrites are recognized; what remains is small
    assert d["loader_rewritten_bytes"] > 300
    assert d["errors"] < 10
    assert "errors : !amdppm" in res.text


def test_chkimg_without_image_says_so():
    s = _session()
    (res,) = s.run("!chkimg nt")
    assert res.data["image_found"] is False and "Unable to find the image file" in res.text
