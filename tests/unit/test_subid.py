"""pyoci.linux.subid: parsing /etc/subuid and /etc/subgid, and the range
check pyoci runs before newuidmap/newgidmap."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pyoci.errors import PyociError
from pyoci.linux import idmap, subid
from pyoci.linux.subid import Entry

REPO = Path(__file__).resolve().parents[2]

SAMPLE = """\
# comment line
alice:100000:65536

bob:165536:65536
1005:231072:65536
broken line
carol:x:10
dave:300000:0
eve:300000
  frank:400000:1000\t
alice:500000:1000
"""


def test_parse_skips_comments_blank_and_malformed_lines() -> None:
    entries = subid.parse(SAMPLE)
    assert entries == [
        Entry("alice", 100000, 65536),
        Entry("bob", 165536, 65536),
        Entry("1005", 231072, 65536),
        Entry("frank", 400000, 1000),
        Entry("alice", 500000, 1000),
    ]
    assert [e.lineno for e in entries] == [2, 4, 5, 10, 11]
    assert entries[0].end == 165535


def test_ranges_for_by_name_in_file_order() -> None:
    entries = subid.parse(SAMPLE)
    assert subid.ranges_for("alice", 1001, entries=entries) == [(100000, 65536), (500000, 1000)]


def test_ranges_for_by_uid() -> None:
    entries = subid.parse(SAMPLE)
    # "1005" is a uid: it belongs to whoever has that uid, whatever the name.
    assert subid.ranges_for("george", 1005, entries=entries) == [(231072, 65536)]
    assert subid.ranges_for(None, 1005, entries=entries) == [(231072, 65536)]


def test_ranges_for_nobody() -> None:
    entries = subid.parse(SAMPLE)
    assert subid.ranges_for("zed", 4242, entries=entries) == []
    # a name is not matched as a prefix or case-insensitively
    assert subid.ranges_for("ali", 1, entries=entries) == []
    assert subid.ranges_for("Alice", 1, entries=entries) == []


def test_ranges_for_reads_the_file(tmp_path: Path) -> None:
    p = tmp_path / "subuid"
    p.write_text("alice:100000:65536\n")
    assert subid.ranges_for("alice", 1001, path=str(p)) == [(100000, 65536)]
    assert subid.ranges_for("alice", 1001, path=str(tmp_path / "missing")) == []


def test_merge_and_covers() -> None:
    assert subid.merge([(10, 5), (0, 5), (20, 1), (12, 10)]) == [(0, 5), (10, 12)]
    assert subid.merge([(0, 5), (5, 5)]) == [(0, 10)]
    assert subid.merge([(0, 5), (6, 5)]) == [(0, 5), (6, 5)]
    ranges = [(100000, 65536)]
    assert subid.covers(ranges, 100000, 65536)
    assert subid.covers(ranges, 100999, 1)
    assert not subid.covers(ranges, 99999, 2)
    assert not subid.covers(ranges, 165535, 2)
    assert not subid.covers(ranges, 100000, 0)
    # adjacent ranges combine (as shadow's have_range walks them)
    assert subid.covers([(100000, 1000), (101000, 1000)], 100500, 1000)
    assert not subid.covers([(100000, 1000), (101001, 1000)], 100500, 1000)


def test_overlaps_ignore_the_users_own_entries() -> None:
    entries = subid.parse(SAMPLE)
    assert subid.overlaps(entries, 160000, 10000, user="alice", uid=1001) == [Entry("bob", 165536, 65536)]
    assert subid.overlaps(entries, 100000, 10, user="alice", uid=1001) == []
    assert subid.overlaps(entries, 100000, 10, user="bob", uid=1002) == [Entry("alice", 100000, 65536)]


def test_free_start() -> None:
    entries = subid.parse(SAMPLE)
    # 100000..296607 are taken (alice, bob, 1005), then frank at 400000..400999
    assert subid.free_start(entries) == 296608
    # 200000 ids fit only after alice's second range (500000..500999)
    assert subid.free_start(entries, 200000) == 501000
    assert subid.free_start(entries, 100000) == 296608
    assert subid.free_start([]) == 100000


def _check(lines: list[tuple[int, int, int]], ranges: list[tuple[int, int]], kind: str = "uid",
           own: int = 1001, entries: list[Entry] | None = None) -> None:
    subid.check_mapping(lines, own, ranges, kind, user="alice", uid=1001, entries=entries)


def test_check_accepts_own_id_and_subordinate_ranges() -> None:
    _check([(0, 1001, 1), (1, 100000, 65536)], [(100000, 65536)])
    _check([(0, 1001, 1)], [])
    _check([(0, 100000, 1000), (1000, 101000, 1000)], [(100000, 1000), (101000, 1000)])
    _check([(0, 1001, 1), (1, 100000, 65536)], [(100000, 65536)], kind="gid")


def test_check_no_entry_names_field_range_and_fix() -> None:
    with pytest.raises(PyociError) as ei:
        _check([(0, 1001, 1), (1, 100000, 65536)], [])
    e = ei.value
    text = str(e)
    assert e.field == "$.linux.uidMappings[1]"
    assert "$.linux.uidMappings[1]" in text
    assert "host uids 100000-165535" in text
    assert "no entry for user alice (uid 1001) in /etc/subuid" in text
    assert "usermod --add-subuids 100000-165535 alice" in text
    assert "alice:100000:65536" in text


def test_check_gid_kind_names_subgid() -> None:
    with pytest.raises(PyociError) as ei:
        _check([(0, 1001, 1), (1, 100000, 65536)], [], kind="gid")
    text = str(ei.value)
    assert ei.value.field == "$.linux.gidMappings[1]"
    assert "/etc/subgid" in text and "/etc/subuid" not in text
    assert "usermod --add-subgids 100000-165535 alice" in text


def test_check_range_too_small_shows_the_users_ranges() -> None:
    with pytest.raises(PyociError) as ei:
        _check([(0, 1001, 1), (1, 100000, 65536)], [(100000, 1000)])
    text = str(ei.value)
    assert "user alice (uid 1001) has 100000-100999 (1000 ids) in /etc/subuid" in text
    # the fix grants only what is missing
    assert "usermod --add-subuids 101000-165535 alice" in text
    assert "alice:101000:64536" in text


def test_check_first_bad_line_is_named() -> None:
    with pytest.raises(PyociError) as ei:
        _check([(0, 1001, 1), (1, 100000, 1000), (1000, 300000, 10)], [(100000, 1000)])
    assert ei.value.field == "$.linux.uidMappings[2]"
    assert "host uids 300000-300009" in str(ei.value)


def test_check_someone_elses_id_of_size_one() -> None:
    with pytest.raises(PyociError) as ei:
        _check([(0, 0, 1)], [(100000, 65536)])
    text = str(ei.value)
    assert ei.value.field == "$.linux.uidMappings[0]"
    assert "host uid 0 is not delegated" in text
    assert "your own uid is 1001" in text
    assert "map hostID 1001 (your own uid) with size 1" in text
    # an account's id is never suggested for delegation
    assert "usermod" not in text


def test_check_low_ids_are_not_suggested_for_delegation() -> None:
    with pytest.raises(PyociError) as ei:
        _check([(0, 1001, 1), (1, 1, 65536)], [])
    text = str(ei.value)
    assert "usermod --add-subuids 100000-165535 alice" in text
    assert "and map hostID 100000" in text
    assert "--add-subuids 1-" not in text


def test_uncovered() -> None:
    assert subid.uncovered([(100000, 1000)], 100000, 65536) == [(101000, 64536)]
    assert subid.uncovered([(100000, 1000)], 99000, 3000) == [(99000, 1000), (101000, 1000)]
    assert subid.uncovered([(100000, 1000)], 100000, 1000) == []
    assert subid.uncovered([], 5, 5) == [(5, 5)]


def test_check_range_of_another_user_suggests_a_free_one() -> None:
    entries = subid.parse(SAMPLE)
    with pytest.raises(PyociError) as ei:
        _check([(0, 1001, 1), (1, 165536, 65536)], [(100000, 65536), (500000, 1000)], entries=entries)
    text = str(ei.value)
    assert "165536-231071 belongs to bob" in text
    assert "map hostID 100000 (inside your range) instead" in text
    assert "usermod --add-subuids 296608-362143 alice" in text
    assert "usermod --add-subuids 165536" not in text


def test_check_idmap_uses_both_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "subuid").write_text("alice:100000:65536\n")
    (tmp_path / "subgid").write_text("bob:100000:65536\n")
    monkeypatch.setattr(subid, "FILES", {"uid": str(tmp_path / "subuid"), "gid": str(tmp_path / "subgid")})
    monkeypatch.setattr(subid, "caller", lambda: ("alice", 1001, 1001))
    monkeypatch.setattr(subid, "nss_source", lambda: "files")
    subid.check_idmap([(0, 1001, 1), (1, 100000, 65536)], [(0, 1001, 1)])
    with pytest.raises(PyociError) as ei:
        subid.check_idmap([(0, 1001, 1), (1, 100000, 65536)], [(0, 1001, 1), (1, 100000, 65536)])
    assert ei.value.field == "$.linux.gidMappings[1]"
    assert f"no entry for user alice (uid 1001) in {tmp_path / 'subgid'}" in str(ei.value)


def test_write_with_helpers_checks_before_running_the_helpers(monkeypatch: pytest.MonkeyPatch,
                                                              tmp_path: Path) -> None:
    from pyoci.plan.build import IdMap

    (tmp_path / "subuid").write_text("")
    (tmp_path / "subgid").write_text("")
    monkeypatch.setattr(subid, "FILES", {"uid": str(tmp_path / "subuid"), "gid": str(tmp_path / "subgid")})
    monkeypatch.setattr(subid, "caller", lambda: ("alice", 1001, 1001))
    monkeypatch.setattr(subid, "nss_source", lambda: "files")

    def no_run(*a: object, **k: object) -> None:
        raise AssertionError("newuidmap/newgidmap ran before the check")

    monkeypatch.setattr(subprocess, "run", no_run)
    m = IdMap([(0, 1001, 1), (1, 100000, 65536)], [(0, 1001, 1), (1, 100000, 65536)], None)
    with pytest.raises(PyociError) as ei:
        idmap.write_with_helpers(12345, m)
    assert ei.value.field == "$.linux.uidMappings[1]"
    assert "no entry for user alice" in str(ei.value)


def test_helper_failure_shows_its_message_and_the_needed_entries(monkeypatch: pytest.MonkeyPatch,
                                                                 tmp_path: Path) -> None:
    from pyoci.plan.build import IdMap

    (tmp_path / "subuid").write_text("alice:100000:65536\n")
    (tmp_path / "subgid").write_text("alice:100000:65536\n")
    monkeypatch.setattr(subid, "FILES", {"uid": str(tmp_path / "subuid"), "gid": str(tmp_path / "subgid")})
    monkeypatch.setattr(subid, "caller", lambda: ("alice", 1001, 1001))
    monkeypatch.setattr(subid, "nss_source", lambda: "files")

    def fake_run(args: list[str], **k: object) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(args, 1, "", "newgidmap: gid range [1-65537) -> "
                                           "[100000-165536) not allowed\n")

    monkeypatch.setattr(subprocess, "run", fake_run)
    monkeypatch.setattr("shutil.which", lambda tool: "/bin/true")
    m = IdMap([(0, 1001, 1), (1, 100000, 65536)], [(0, 1001, 1), (1, 100000, 65536)], None)
    with pytest.raises(PyociError) as ei:
        idmap.write_with_helpers(12345, m)
    text = str(ei.value)
    assert "newgidmap 12345 0 1001 1 1 100000 65536: newgidmap: gid range [1-65537)" in text
    assert f"it needed {tmp_path / 'subgid'} to grant alice:100000:65536" in text


def test_nss_source(tmp_path: Path) -> None:
    p = tmp_path / "nsswitch.conf"
    p.write_text("passwd: files\n")
    assert subid.nss_source(str(p)) == "files"
    p.write_text("passwd: files\n# subid: sss\nsubid:   sss  # from FreeIPA\n")
    assert subid.nss_source(str(p)) == "sss"
    assert subid.nss_source(str(tmp_path / "missing")) == "files"


def test_check_idmap_with_an_nss_source(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(subid, "caller", lambda: ("alice", 1001, 1001))
    monkeypatch.setattr(subid, "nss_source", lambda: "sss")
    monkeypatch.setattr(subid, "getsubids", lambda user, kind: [(500000, 65536)])
    subid.check_idmap([(0, 1001, 1), (1, 500000, 65536)], [(0, 1001, 1), (1, 500000, 65536)])
    with pytest.raises(PyociError) as ei:
        subid.check_idmap([(0, 1001, 1), (1, 100000, 65536)], [(0, 1001, 1)])
    assert "has 500000-565535 (65536 ids) in the subid database (sss, nsswitch.conf)" in str(ei.value)
    # getsubids cannot answer: newuidmap decides
    monkeypatch.setattr(subid, "getsubids", lambda user, kind: None)
    subid.check_idmap([(0, 1001, 1), (1, 100000, 65536)], [(0, 1001, 1)])


def test_needed_entries() -> None:
    assert subid.needed_entries([(0, 1001, 1), (1, 100000, 65536)], 1001, "uid", "alice", 1001) \
        == "alice:100000:65536"
    assert subid.needed_entries([(0, 1001, 1)], 1001, "uid", "alice", 1001) == "none (only your own id)"


def test_import_is_light() -> None:
    code = (f"import sys; sys.path.insert(0, {str(REPO)!r}); import pyoci.linux.subid; "
            "print(' '.join(m for m in ('re', 'json', 'typing', 'subprocess', 'pwd') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
