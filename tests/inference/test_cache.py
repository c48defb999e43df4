from app.inference.cache import ByteLRU


def test_lru_evicts_least_recently_used_until_the_bytes_fit():
    cache: ByteLRU[str] = ByteLRU(100)
    cache.put("a", "A", 40)
    cache.put("b", "B", 40)
    assert cache.get("a") == "A"  # a is now the most recent
    cache.put("c", "C", 40)
    assert "b" not in cache and cache.get("a") == "A" and cache.get("c") == "C"
    assert cache.bytes == 80


def test_an_entry_larger_than_the_budget_is_not_kept_and_evicts_nothing():
    cache: ByteLRU[str] = ByteLRU(100)
    cache.put("a", "A", 60)
    cache.put("huge", "H", 101)
    assert "huge" not in cache and cache.get("a") == "A" and cache.bytes == 60


def test_replacing_a_key_counts_its_bytes_once():
    cache: ByteLRU[str] = ByteLRU(100)
    cache.put("a", "A", 60)
    cache.put("a", "A2", 70)
    assert cache.bytes == 70 and len(cache) == 1 and cache.get("a") == "A2"


def test_get_or_load_loads_once_then_hits():
    cache: ByteLRU[str] = ByteLRU(100)
    loads = []

    def load() -> tuple[str, int]:
        loads.append(1)
        return "model", 10

    assert cache.get_or_load("m", load) == ("model", False)
    assert cache.get_or_load("m", load) == ("model", True)
    assert len(loads) == 1
