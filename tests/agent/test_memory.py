"""Token-budget packing (property-based) and the peak-memory probe."""

from __future__ import annotations

import re
import resource
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mapo_agent.memory import pack_by_tokens, padded_tokens, peak_rss_bytes
from mapo_agent.rollout import RolloutWorker
from mapo_env.errors import ConfigError

lengths_st = st.lists(st.integers(0, 400), min_size=0, max_size=40)


@st.composite
def packing_cases(draw):
    lengths = draw(lengths_st)
    groups = draw(st.lists(st.integers(0, 6), min_size=len(lengths), max_size=len(lengths)))
    budget = draw(st.integers(1, 3000))
    return lengths, groups, budget


def _group_sizes(lengths, groups, rows):
    return padded_tokens([lengths[i] for i in rows])


@settings(max_examples=300, deadline=None)
@given(packing_cases(), st.booleans())
def test_every_sequence_once_and_every_chunk_within_budget_or_alone(case, split_groups):
    lengths, groups, budget = case
    chunks = pack_by_tokens(lengths, budget, groups, split_groups=split_groups)
    assert sorted(i for chunk in chunks for i in chunk) == list(range(len(lengths)))
    assert all(chunk and chunk == sorted(chunk) for chunk in chunks)
    for chunk in chunks:
        if padded_tokens([lengths[i] for i in chunk]) > budget:
            # over budget only when it cannot be smaller: one sequence, or one unsplittable group
            assert len(chunk) == 1 or (not split_groups and len({groups[i] for i in chunk}) == 1)


@settings(max_examples=300, deadline=None)
@given(packing_cases())
def test_a_group_that_fits_is_never_split(case):
    lengths, groups, budget = case
    chunks = pack_by_tokens(lengths, budget, groups)
    where = {i: k for k, chunk in enumerate(chunks) for i in chunk}
    for group in set(groups):
        rows = [i for i, g in enumerate(groups) if g == group]
        if _group_sizes(lengths, groups, rows) <= budget:
            assert len({where[i] for i in rows}) == 1


@settings(max_examples=200, deadline=None)
@given(lengths_st, st.integers(1, 3000))
def test_without_groups_chunks_are_consecutive_and_greedy(lengths, budget):
    chunks = pack_by_tokens(lengths, budget)
    assert [i for chunk in chunks for i in chunk] == list(range(len(lengths)))
    for chunk, following in zip(chunks, chunks[1:]):  # the next sequence did not fit
        assert padded_tokens([lengths[i] for i in chunk + following[:1]]) > budget


def test_no_budget_is_one_chunk_and_examples():
    assert pack_by_tokens([5, 7, 9], None) == [[0, 1, 2]]
    assert pack_by_tokens([], 10) == []
    assert pack_by_tokens([100, 100, 300, 50], 400) == [[0, 1], [2], [3]]
    assert pack_by_tokens([100] * 4, 300) == [[0, 1, 2], [3]]
    assert pack_by_tokens([100] * 4, 300, [0, 0, 1, 1]) == [[0, 1], [2, 3]]  # group 1 kept whole
    assert pack_by_tokens([300, 300, 300], 400, [0, 0, 0]) == [[0], [1], [2]]  # a group over budget is split
    assert pack_by_tokens([300, 300, 300], 400, [0, 0, 0], split_groups=False) == [[0, 1, 2]]
    assert pack_by_tokens([900, 10], 400) == [[0], [1]]  # a sequence over budget runs alone


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lengths": [1], "budget": 0}, "token budget must be >= 1"),
        ({"lengths": [-1], "budget": 5}, "lengths must be >= 0"),
        ({"lengths": [1, 2], "budget": 5, "groups": [0]}, "one group id per sequence"),
    ],
)
def test_bad_arguments_raise_config_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        pack_by_tokens(**kwargs)


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="needs Linux /proc")
def test_peak_rss_is_the_kernels_high_water_mark_in_bytes():
    block = np.ones(64 * 2**20, dtype=np.uint8)  # 64 MiB, touched
    status = Path("/proc/self/status").read_text()
    high_water = int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) * 1024
    peak = peak_rss_bytes()
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # e.g. subprocesses of other tests
    assert peak >= block.nbytes
    assert high_water - 4 * 2**20 <= peak <= high_water + children + 4 * 2**20  # KiB read as bytes would fail


def test_a_workers_envs_share_one_dataset_so_a_group_draws_its_scene_once():
    worker = RolloutWorker("MAPO-VStar-v0", {"alignment": "lexical"})
    envs = worker._envs(3)
    assert all(env.unwrapped.dataset is envs[0].unwrapped.dataset for env in envs)
    for env in envs:
        env.reset(seed=0, options={"index": 7})
    samples = [env.unwrapped.current_sample for env in envs]
    assert samples[1] is samples[0] and samples[2] is samples[0]  # one scene in memory, not three
    worker.close()


def test_waves_of_questions_give_the_episodes_of_playing_them_all_at_once(tiny_policy_cpu):
    questions = [3, 1, 4, 1, 5]
    at_once = RolloutWorker("MAPO-Tiles-v0").run(tiny_policy_cpu, questions, 2, seed=11, actor="oracle")
    worker = RolloutWorker("MAPO-Tiles-v0", max_concurrent_questions=2)
    waves = worker.run(tiny_policy_cpu, questions, 2, seed=11, actor="oracle", first_group_id=0)
    assert len(worker.envs) == 2  # never more environments (and scenes) than one wave needs (oracle: 1 per question)
    assert [(t.group_id, t.sample_index, t.input_ids) for t in waves] == [
        (t.group_id, t.sample_index, t.input_ids) for t in at_once
    ]
    with pytest.raises(ConfigError, match="max_concurrent_questions must be >= 1"):
        RolloutWorker("MAPO-Tiles-v0", max_concurrent_questions=0)


@pytest.fixture(scope="module")
def tiny_policy_cpu():
    from mapo_agent.policy import HFPolicy

    return HFPolicy.from_pretrained(device="cpu", max_new_tokens=8)
