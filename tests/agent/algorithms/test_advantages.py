"""Advantage estimators: hand-computed groups, degenerate cases, loop reference vs vectorised."""

import math
import re
import statistics

import numpy as np
import pytest
import torch

from mapo_agent.algorithms.advantages import (
    ADVANTAGE_ESTIMATORS,
    AdvantageConfig,
    compute_dr_grpo_advantage,
    compute_grpo_advantage,
    compute_mapo_advantage,
    compute_rloo_advantage,
    mapo_components,
)
from mapo_agent.types import AdvantageInput
from mapo_env.errors import ConfigError, UnknownNameError

EPS = 1e-6


def make_input(rewards, group_ids, alignment=None, dtype=torch.float32) -> AdvantageInput:
    n = len(rewards)
    alignment = alignment if alignment is not None else [[] for _ in range(n)]
    return AdvantageInput(
        rewards=torch.tensor(rewards, dtype=dtype),
        group_ids=torch.tensor(group_ids, dtype=torch.long),
        correct=torch.tensor([r == 1 for r in rewards]),
        alignment_scores=alignment,
        num_tool_calls=torch.tensor([len(a) for a in alignment]),
        response_lengths=torch.full((n,), 10),
        truncated=torch.zeros(n, dtype=torch.bool),
    )


def z(values: list[float]) -> list[float]:
    """Hand reference: sample-std z-score of a group (0 for a constant group)."""
    if len(values) < 2 or len(set(values)) == 1:
        return [0.0] * len(values)
    mean, std = statistics.mean(values), statistics.stdev(values)
    return [(v - mean) / (std + EPS) for v in values]


def assert_close(actual: torch.Tensor, expected: list[float], tol: float = 1e-5) -> None:
    assert actual.dtype == torch.float32
    assert actual.shape == (len(expected),)
    assert actual.tolist() == pytest.approx(expected, abs=tol)


def test_registry_holds_the_four_estimators():
    assert ADVANTAGE_ESTIMATORS.names() == ["dr_grpo", "grpo", "mapo", "rloo"]
    assert ADVANTAGE_ESTIMATORS.get("grpo") is compute_grpo_advantage
    with pytest.raises(UnknownNameError, match=re.escape("Did you mean 'grpo'?")):
        ADVANTAGE_ESTIMATORS.get("gpro")


# ---------------------------------------------------------------------------- GRPO / Dr.GRPO / RLOO

# Two interleaved groups: A = rows 0, 2, 4, 6 with rewards 1, 0, 0, 1; B = rows 1, 3, 5 with 2, 0, 1.
REWARDS = [1.0, 2.0, 0.0, 0.0, 0.0, 1.0, 1.0]
GROUPS = [7, 3, 7, 3, 7, 3, 7]


def test_grpo_hand_computed():
    # group A: mean 0.5, sample std sqrt(4 * 0.25 / 3) = 0.57735 -> +-0.5 / 0.57735 = +-0.866025
    # group B: mean 1, sample std 1 -> (2-1)/1, (0-1)/1, 0
    a = 0.5 / (math.sqrt(1 / 3) + EPS)
    expected = [a, 1 / (1 + EPS), -a, -1 / (1 + EPS), -a, 0.0, a]
    assert_close(compute_grpo_advantage(make_input(REWARDS, GROUPS), AdvantageConfig()), expected)


def test_grpo_scale_none_equals_dr_grpo():
    inp = make_input(REWARDS, GROUPS)
    expected = [0.5, 1.0, -0.5, -1.0, -0.5, 0.0, 0.5]  # reward minus group mean
    assert_close(compute_grpo_advantage(inp, AdvantageConfig(scale="none")), expected)
    assert_close(compute_dr_grpo_advantage(inp, AdvantageConfig()), expected)


def test_rloo_hand_computed():
    # A: 1 - (0+0+1)/3 = 2/3, 0 - (1+0+1)/3 = -2/3.  B: 2 - (0+1)/2 = 1.5, 0 - 1.5 = -1.5, 1 - (2+0)/2 = 0
    expected = [2 / 3, 1.5, -2 / 3, -1.5, -2 / 3, 0.0, 2 / 3]
    assert_close(compute_rloo_advantage(make_input(REWARDS, GROUPS), AdvantageConfig()), expected)


@pytest.mark.parametrize("name", ["grpo", "dr_grpo", "rloo", "mapo"])
def test_all_equal_group_is_exactly_zero(name):
    # in float64, mean(0.1, 0.1, 0.1) != 0.1: a naive (x - mean) / (std + eps) gives ~1e-11, not 0
    inp = make_input([0.1, 0.1, 0.1, 1.0, 0.0], [0, 0, 0, 1, 1], [[0.1, 0.1]] * 3 + [[0.5], [0.5]], torch.float64)
    adv = ADVANTAGE_ESTIMATORS.get(name)(inp, AdvantageConfig())
    assert adv[:3].tolist() == [0.0, 0.0, 0.0]
    assert adv[3] > 0 > adv[4]


@pytest.mark.parametrize("name", ["grpo", "dr_grpo", "rloo", "mapo"])
def test_group_of_one_is_zero(name):
    inp = make_input([1.0, 1.0, 0.0], [5, 6, 6], alignment=[[0.9], [0.1], [0.8]])
    adv = ADVANTAGE_ESTIMATORS.get(name)(inp, AdvantageConfig())
    assert adv[0].item() == 0.0
    assert adv[1] > 0 > adv[2]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("name", ["grpo", "dr_grpo", "rloo", "mapo"])
def test_non_finite_reward_gets_zero_and_is_excluded(name, bad, caplog):
    fn = ADVANTAGE_ESTIMATORS.get(name)
    with_bad = fn(make_input([1.0, bad, 0.0, 0.0], [0, 0, 0, 0]), AdvantageConfig())
    without = fn(make_input([1.0, 0.0, 0.0], [0, 0, 0]), AdvantageConfig())
    assert with_bad[1].item() == 0.0
    assert with_bad[[0, 2, 3]].tolist() == pytest.approx(without.tolist(), abs=1e-6)
    assert torch.isfinite(with_bad).all()
    assert "1 of 4 rollouts have a non-finite" in caplog.text


def test_grpo_two_rollouts_non_finite_leaves_group_of_one():
    adv = compute_grpo_advantage(make_input([1.0, float("nan"), 0.0], [0, 0, 1]), AdvantageConfig())
    assert adv.tolist() == [0.0, 0.0, 0.0]


def test_shape_mismatch_is_our_error():
    inp = make_input([1.0, 0.0], [0, 0])
    inp.group_ids = torch.tensor([0, 0, 0])
    with pytest.raises(ConfigError, match=re.escape("must both be 1-D of length B, got shapes (2,) and (3,)")):
        compute_grpo_advantage(inp, AdvantageConfig())


def test_empty_batch():
    assert compute_grpo_advantage(make_input([], []), AdvantageConfig()).shape == (0,)
    assert compute_mapo_advantage(make_input([], []), AdvantageConfig()).shape == (0,)


# ---------------------------------------------------------------------------- MAPO

# One group of four. Alignment per rollout, λ = 0.5:
#   r0 [0.2, 0.8]       late: (0.5*0.2 + 1*0.8) / 1.5 = 0.6       early: (1*0.2 + 0.5*0.8) / 1.5 = 0.4
#   r1 [0.4]            0.4 either way
#   r2 []               no tool call
#   r3 [0.9, 0.3, 0.3]  late: (0.25*0.9 + 0.5*0.3 + 1*0.3) / 1.75 = 0.675/1.75
#                       early: (1*0.9 + 0.5*0.3 + 0.25*0.3) / 1.75 = 1.125/1.75
MAPO_R = [1.0, 0.0, 1.0, 0.0]
MAPO_S = [[0.2, 0.8], [0.4], [], [0.9, 0.3, 0.3]]
S_LATE = [0.6, 0.4, 0.0, 0.675 / 1.75]
S_EARLY = [0.4, 0.4, 0.0, 1.125 / 1.75]


def mapo_cfg(**kw) -> AdvantageConfig:
    """The z-scored variant with S = 0 for no-tool rollouts (the hand values below), unless overridden."""
    kw = {"semantic_scale": "zscore", "no_tool_policy": "zero", **kw}
    return AdvantageConfig(discount=0.5, **kw)


def centred(values: list[float]) -> list[float]:
    if len(values) < 2 or len(set(values)) == 1:
        return [0.0] * len(values)
    mean = statistics.mean(values)
    return [v - mean for v in values]


def test_mapo_adv_sum_late_default_direction():
    inp = make_input(MAPO_R, [0, 0, 0, 0], MAPO_S)
    expected = [o + 0.4 * s for o, s in zip(z(MAPO_R), z(S_LATE))]
    assert_close(compute_mapo_advantage(inp, mapo_cfg()), expected)


def test_mapo_early_direction():
    inp = make_input(MAPO_R, [0, 0, 0, 0], MAPO_S)
    expected = [o + 0.4 * s for o, s in zip(z(MAPO_R), z(S_EARLY))]
    assert_close(compute_mapo_advantage(inp, mapo_cfg(discount_direction="early")), expected)


def test_mapo_discount_one_is_plain_mean():
    inp = make_input(MAPO_R, [0, 0, 0, 0], MAPO_S)
    s_mean = [0.5, 0.4, 0.0, 0.5]
    parts = mapo_components(inp, AdvantageConfig(discount=1.0, no_tool_policy="zero"))
    assert parts.semantic_score.tolist() == pytest.approx(s_mean)


def test_mapo_gate():
    inp = make_input(MAPO_R, [0, 0, 0, 0], MAPO_S)
    expected = [o * (1 + 0.4 * s) for o, s in zip(z(MAPO_R), z(S_LATE))]
    assert_close(compute_mapo_advantage(inp, mapo_cfg(combine="gate")), expected)


def test_mapo_reward_mix():
    inp = make_input(MAPO_R, [0, 0, 0, 0], MAPO_S)
    mixed = [0.6 * r + 0.4 * s for r, s in zip(MAPO_R, S_LATE)]
    assert_close(compute_mapo_advantage(inp, mapo_cfg(combine="reward_mix")), z(mixed))


def test_mapo_no_tool_group_mean_excludes_the_rollout_from_semantics():
    inp = make_input(MAPO_R, [0, 0, 0, 0], MAPO_S)
    tool_users = z([S_LATE[0], S_LATE[1], S_LATE[3]])
    sem = [tool_users[0], tool_users[1], 0.0, tool_users[2]]
    expected = [o + 0.4 * s for o, s in zip(z(MAPO_R), sem)]
    assert_close(compute_mapo_advantage(inp, mapo_cfg(no_tool_policy="group_mean")), expected)


def test_mapo_no_tool_group_mean_under_reward_mix_uses_group_mean_score():
    inp = make_input(MAPO_R, [0, 0, 0, 0], MAPO_S)
    fill = (S_LATE[0] + S_LATE[1] + S_LATE[3]) / 3
    s = [S_LATE[0], S_LATE[1], fill, S_LATE[3]]
    expected = z([0.6 * r + 0.4 * x for r, x in zip(MAPO_R, s)])
    assert_close(compute_mapo_advantage(inp, mapo_cfg(no_tool_policy="group_mean", combine="reward_mix")), expected)


def test_mapo_equal_rewards_still_get_semantic_signal():
    inp = make_input([1.0, 1.0, 1.0], [0, 0, 0], [[0.9], [0.5], [0.1]])
    adv = compute_mapo_advantage(inp, AdvantageConfig())
    assert_close(adv, [0.4 * 0.4, 0.0, -0.4 * 0.4])  # default "center": β·(S − mean S)
    assert adv[0] > 0 > adv[2]
    zscored = AdvantageConfig(semantic_scale="zscore")
    assert_close(compute_mapo_advantage(inp, zscored), [0.4 * s for s in z([0.9, 0.5, 0.1])])


def test_mapo_default_center_hand_computed():
    # defaults: λ = 0.95 late, no-tool rollouts left out (A_sem = 0), S centred on the tool users' mean
    inp = make_input(MAPO_R, [0, 0, 0, 0], [[0.2, 0.8], [0.4], [], [0.6]])
    s0 = (0.95 * 0.2 + 0.8) / 1.95
    mean = (s0 + 0.4 + 0.6) / 3
    expected = [o + 0.4 * s for o, s in zip(z(MAPO_R), [s0 - mean, 0.4 - mean, 0.0, 0.6 - mean])]
    assert_close(compute_mapo_advantage(inp, AdvantageConfig()), expected)


def test_mapo_tiny_semantic_spread_stays_tiny_unless_zscored():
    # the case: equal outcomes, S differing by 0.001
    inp = make_input([1.0, 1.0], [0, 0], [[0.500], [0.501]])
    assert compute_mapo_advantage(inp, AdvantageConfig()).abs().max().item() == pytest.approx(0.4 * 0.0005, abs=1e-7)
    floor = compute_mapo_advantage(inp, AdvantageConfig(semantic_scale="std_floor", semantic_std_floor=0.1))
    assert floor.abs().max().item() == pytest.approx(0.4 * 0.0005 / 0.1, rel=1e-4)
    zscored = compute_mapo_advantage(inp, AdvantageConfig(semantic_scale="zscore"))
    assert zscored.abs().max().item() == pytest.approx(0.4 * 0.7071, rel=1e-2)  # ±0.28 from a 0.001 spread


def test_mapo_std_floor_divides_by_the_larger_of_std_and_floor():
    scores = [0.9, 0.5, 0.1]  # sample std 0.4 > floor 0.1
    inp = make_input([1.0, 0.0, 1.0], [0, 0, 0], [[x] for x in scores])
    cfg = AdvantageConfig(semantic_scale="std_floor", semantic_std_floor=0.1)
    expected = [o + 0.4 * c / 0.4 for o, c in zip(z([1.0, 0.0, 1.0]), centred(scores))]
    assert_close(compute_mapo_advantage(inp, cfg), expected)
    big_floor = AdvantageConfig(semantic_scale="std_floor", semantic_std_floor=2.0)
    expected = [o + 0.4 * c / 2.0 for o, c in zip(z([1.0, 0.0, 1.0]), centred(scores))]
    assert_close(compute_mapo_advantage(inp, big_floor), expected)


def test_mapo_failed_calls_count_as_zero_or_are_skipped():
    # r0 zoomed once and then failed a call; r1 only failed; r2 scored 0.5
    align = [[0.9, None], [None], [0.5]]
    inp = make_input([1.0, 1.0, 1.0], [0, 0, 0], align)
    zero = mapo_components(inp, AdvantageConfig(discount=1.0))
    assert zero.semantic_score.tolist() == pytest.approx([0.45, 0.0, 0.5])
    assert zero.has_tool.tolist() == [True, True, True]
    skip = mapo_components(inp, AdvantageConfig(discount=1.0, invalid_call_policy="skip"))
    assert skip.has_tool.tolist() == [True, False, True]
    assert skip.semantic_advantage.tolist() == pytest.approx([0.2, 0.0, -0.2])  # r1 left out (group_mean)


def test_trajectory_tool_call_scores_feed_the_advantage():
    from mapo_agent.types import AdvantageInput, Trajectory

    t = Trajectory(
        [1], [1], [0.0], [], group_id=0, sample_index=0, alignment_scores=[0.7], tool_call_scores=[None, 0.7]
    )
    legacy = Trajectory([1], [1], [0.0], [], group_id=0, sample_index=0, alignment_scores=[0.7])
    assert AdvantageInput.from_trajectories([t, legacy]).alignment_scores == [[None, 0.7], [0.7]]


@pytest.mark.parametrize("scale", ["center", "std_floor", "zscore"])
def test_mapo_equal_rewards_and_scores_is_zero(scale):
    inp = make_input([1.0, 1.0], [0, 0], [[0.3], [0.3]])
    assert compute_mapo_advantage(inp, AdvantageConfig(semantic_scale=scale)).tolist() == [0.0, 0.0]


def test_mapo_nan_alignment_gets_zero_and_is_excluded(caplog):
    align = [[0.2, 0.8], [0.4, float("nan")], [], [0.9, 0.3, 0.3]]
    adv = compute_mapo_advantage(make_input(MAPO_R, [0, 0, 0, 0], align), mapo_cfg())
    rest = [0, 2, 3]
    r_rest = [MAPO_R[i] for i in rest]
    s_rest = [S_LATE[i] for i in rest]
    expected = [o + 0.4 * s for o, s in zip(z(r_rest), z(s_rest))]
    assert adv[1].item() == 0.0
    assert adv[rest].tolist() == pytest.approx(expected, abs=1e-5)
    assert "non-finite reward or alignment score" in caplog.text


def test_mapo_groups_are_independent():
    inp = make_input(MAPO_R + [1.0, 0.0], [0, 0, 0, 0, 1, 1], MAPO_S + [[0.1], [0.9]])
    adv = compute_mapo_advantage(inp, mapo_cfg())
    alone = compute_mapo_advantage(make_input(MAPO_R, [0, 0, 0, 0], MAPO_S), mapo_cfg())
    assert adv[:4].tolist() == pytest.approx(alone.tolist(), abs=1e-6)
    assert adv[4:].tolist() == pytest.approx([z([1.0, 0.0])[i] + 0.4 * z([0.1, 0.9])[i] for i in range(2)], abs=1e-5)


def test_mapo_alignment_list_length_checked():
    inp = make_input([1.0, 0.0], [0, 0], [[0.1], [0.2]])
    inp.alignment_scores = [[0.1]]
    with pytest.raises(ConfigError, match=re.escape("must have one list per rollout (2), got 1")):
        compute_mapo_advantage(inp, AdvantageConfig())


# ---------------------------------------------------------------------------- config validation


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"std_eps": 0.0}, "std_eps must be > 0, got 0.0"),
        ({"discount": 0.0}, "discount must be in (0, 1], got 0.0"),
        ({"discount": 1.5}, "discount must be in (0, 1], got 1.5"),
        ({"semantic_coef": -0.1}, "semantic_coef must be >= 0, got -0.1"),
        ({"semantic_coef": 1.5, "combine": "reward_mix"}, "semantic_coef must be <= 1, got 1.5"),
        ({"scale": "batch"}, "scale must be one of ['group', 'none'], got 'batch'"),
        ({"combine": "sum"}, "combine must be one of ['adv_sum', 'reward_mix', 'gate'], got 'sum'"),
        ({"no_tool_policy": "skip"}, "no_tool_policy must be one of ['zero', 'group_mean'], got 'skip'"),
        ({"invalid_call_policy": "ignore"}, "invalid_call_policy must be one of ['zero', 'skip'], got 'ignore'"),
        ({"semantic_scale": "z"}, "semantic_scale must be one of ['center', 'std_floor', 'zscore'], got 'z'"),
        ({"semantic_std_floor": 0.0}, "semantic_std_floor must be > 0, got 0.0"),
        ({"discount_direction": "mid"}, "discount_direction must be one of ['late', 'early'], got 'mid'"),
    ],
)
def test_advantage_config_validation(kwargs, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        AdvantageConfig(**kwargs)


# ---------------------------------------------------------------------------- loop reference


def reference(name: str, rewards, groups, alignment, cfg: AdvantageConfig) -> list[float]:
    """Plain-Python loop implementation of the documented rules."""

    def s_of(scores):
        k_total = len(scores)
        if k_total == 0:
            return 0.0
        w = [
            cfg.discount ** (k_total - k if cfg.discount_direction == "late" else k - 1) for k in range(1, k_total + 1)
        ]
        return sum(wi * si for wi, si in zip(w, scores)) / sum(w)

    def norm(xs):
        if len(xs) < 2 or len(set(xs)) == 1:
            return [0.0] * len(xs)
        mean = statistics.mean(xs)
        if cfg.scale == "none":
            return [x - mean for x in xs]
        return [(x - mean) / (statistics.stdev(xs) + cfg.std_eps) for x in xs]

    out = [0.0] * len(rewards)
    for g in set(groups):
        rows = [
            i
            for i in range(len(rewards))
            if groups[i] == g
            and math.isfinite(rewards[i])
            and (name != "mapo" or all(map(math.isfinite, alignment[i])))
        ]
        r = [rewards[i] for i in rows]
        if name == "grpo":
            adv = norm(r)
        elif name == "rloo":
            n = len(r)
            adv = [0.0] * n if n < 2 or len(set(r)) == 1 else [r[j] - (sum(r) - r[j]) / (n - 1) for j in range(n)]
        else:  # the defaults: no-tool rollouts left out of the semantics, S centred only
            users = [j for j, i in enumerate(rows) if alignment[i]]
            s = [s_of(alignment[rows[j]]) for j in users]
            a_sem = [0.0] * len(rows)
            if len(s) >= 2 and len(set(s)) > 1:
                for j, x in zip(users, s):
                    a_sem[j] = x - statistics.mean(s)
            adv = [o + cfg.semantic_coef * a for o, a in zip(norm(r), a_sem)]
        for i, a in zip(rows, adv):
            out[i] = a
    return out


@pytest.mark.parametrize("name", ["grpo", "rloo", "mapo"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vectorised_matches_loop_reference(name, seed):
    rng = np.random.default_rng(seed)
    n = 40
    groups = [int(g) for g in rng.integers(0, 9, n)]  # unordered, uneven, some singletons
    rewards = [float(x) for x in rng.choice([0.0, 1.0, 0.5, 0.25], n)]
    alignment = [[float(x) for x in rng.uniform(0, 1, int(rng.integers(0, 4)))] for _ in range(n)]
    for i in rng.choice(n, 3, replace=False):
        rewards[i] = float("nan")
    alignment[int(rng.integers(n))] = [0.5, float("nan")]
    cfg = AdvantageConfig(discount=float(rng.uniform(0.5, 1.0)))
    got = ADVANTAGE_ESTIMATORS.get(name)(make_input(rewards, groups, alignment), cfg)
    assert got.tolist() == pytest.approx(reference(name, rewards, groups, alignment, cfg), abs=1e-5)
