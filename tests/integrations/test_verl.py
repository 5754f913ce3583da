"""verl route with the real verl (CPU): the registered estimator, the zoom tool, a ToolAgentLoop episode.

Run: ``pytest -m verl -n 0 tests/integrations/test_verl.py`` after ``bash scripts/install_verl.sh``.
Skipped cleanly (module-level ``importorskip``) when verl is not installed; deselected by default.

Only the LLM server is faked (it replays scripted token ids, as a vLLM server would return them);
verl's tool registry, ``ToolAgentLoop``, tool parser, token builder and ``compute_advantage`` are real.
"""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("verl", reason="verl integration needs the [verl] extra: bash scripts/install_verl.sh")

import torch  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402
from PIL import Image  # noqa: E402
from verl import DataProto  # noqa: E402
from verl.experimental.agent_loop.agent_loop import DictConfigWrap, ToolListWrap  # noqa: E402
from verl.experimental.agent_loop.tool_agent_loop import ToolAgentLoop  # noqa: E402
from verl.tools.tool_registry import initialize_tools_from_config  # noqa: E402
from verl.trainer.ppo import core_algos, ray_trainer  # noqa: E402
from verl.utils.dataset.rl_dataset import RLHFDataset  # noqa: E402
from verl.workers.rollout.replica import TokenOutput  # noqa: E402

from mapo_agent.algorithms.advantages import AdvantageConfig, compute_mapo_advantage  # noqa: E402
from mapo_agent.integrations import verl as mapo_verl_agent  # noqa: E402
from mapo_agent.integrations.processor import load_image_processor  # noqa: E402
from mapo_agent.policy.tiny import bundled_model_path  # noqa: E402
from mapo_agent.types import AdvantageInput  # noqa: E402
from mapo_env.errors import ConfigError  # noqa: E402
from mapo_env.integrations import verl as mapo_verl  # noqa: E402

pytestmark = pytest.mark.verl

ROOT = Path(__file__).resolve().parents[2]
ENV_ID = "MAPO-Tiles-v0"
BOX = [0, 0, 56, 56]


@pytest.fixture(scope="module")
def tool_config(tmp_path_factory):
    """The shipped tool YAML, pointed at the small env."""
    config = OmegaConf.load(ROOT / "configs" / "verl" / "mapo_zoom_tool.yaml")
    config.tools[0].config.env_id = ENV_ID
    path = tmp_path_factory.mktemp("verl") / "tool.yaml"
    OmegaConf.save(config, path)
    return path


@pytest.fixture(scope="module")
def rows():
    return mapo_verl.make_rows(ENV_ID, num_questions=2, seed=3)


def reference_episode(row, actions):
    """The env stepped directly with ``actions``: (observations, total reward, infos)."""
    env = mapo_verl.MapoEnvFactory(ENV_ID)().env
    kwargs = row["extra_info"]["tools_kwargs"]["image_zoom_in_tool"]["create_kwargs"]
    env.reset(seed=kwargs["seed"], options={"index": kwargs["index"], "option_order": kwargs["option_order"]})
    total, observations, infos = 0.0, [], []
    for action in actions:
        obs, reward, _, _, info = env.step(action)
        total += reward
        observations.append(obs)
        infos.append(info)
    return observations, total, infos


def zoom_text(box, label="red tile", index=None):
    arguments = {"label": label, "bbox_2d": box} | ({} if index is None else {"image_index": index})
    return "<tool_call>\n" + json.dumps({"name": "image_zoom_in_tool", "arguments": arguments}) + "\n</tool_call>"


# ------------------------------------------------------------------------------------- estimator


def test_registered_estimator_equals_ours():
    mapo_verl_agent.install()
    fn = core_algos.get_adv_estimator_fn("mapo")
    assert fn is mapo_verl_agent.compute_mapo_outcome_advantage
    core_algos.register_adv_est("mapo")(fn)  # registering the same function again is a no-op
    rng = np.random.default_rng(0)
    bs, length = 12, 7
    rewards = torch.tensor(rng.choice([0.0, 0.1, 1.1, 1.2], size=bs), dtype=torch.float32)
    mask = torch.tensor(rng.random((bs, length)) < 0.8, dtype=torch.float32)
    mask[:, 0] = 1
    token_rewards = torch.zeros(bs, length)
    last = mask.cumsum(-1).argmax(-1)
    token_rewards[torch.arange(bs), last] = rewards
    uids = np.array([f"q{i // 4}" for i in range(bs)], dtype=object)
    tool_rewards = np.empty(bs, dtype=object)
    tool_rewards[:] = [[float(x) for x in rng.random(rng.integers(0, 3))] for _ in range(bs)]
    config = OmegaConf.create({"mapo": {"semantic_coef": 0.5, "discount": 0.9}})
    advantages, returns = fn(
        token_level_rewards=token_rewards,
        response_mask=mask,
        index=uids,
        config=config,
        non_tensor_batch={"tool_rewards": tool_rewards},
    )
    expected = compute_mapo_advantage(
        AdvantageInput(
            rewards=rewards,
            group_ids=torch.arange(bs) // 4,
            correct=torch.zeros(bs, dtype=torch.bool),
            alignment_scores=[list(r) for r in tool_rewards],
            num_tool_calls=torch.zeros(bs, dtype=torch.long),
            response_lengths=torch.zeros(bs, dtype=torch.long),
            truncated=torch.zeros(bs, dtype=torch.bool),
        ),
        AdvantageConfig(semantic_coef=0.5, discount=0.9),
    )
    assert torch.allclose(advantages, expected[:, None] * mask)
    assert torch.equal(advantages, returns)
    # the same through verl's own compute_advantage (wrapped by install)
    data = DataProto.from_dict(
        tensors={"token_level_rewards": token_rewards, "response_mask": mask},
        non_tensors={"uid": uids, "tool_rewards": tool_rewards},
    )
    out = ray_trainer.compute_advantage(data, adv_estimator="mapo", config=config)
    assert torch.allclose(out.batch["advantages"], advantages)
    with pytest.raises(ConfigError, match="gdpo"):
        fn(token_level_rewards=token_rewards, response_mask=mask, index=uids, config=config)
    with pytest.raises(ConfigError, match="algorithm.mapo"):
        mapo_verl_agent.advantage_config(OmegaConf.create({"mapo": {"beta": 1.0}}))


# ------------------------------------------------------------------------------------------ tool


def test_tool_returns_the_crop_per_trajectory(tool_config, rows):
    (tool,) = initialize_tools_from_config(str(tool_config))
    assert type(tool).__name__ == "MapoZoomTool" and tool.name == "image_zoom_in_tool"
    assert tool.tool_schema.function.parameters.required == ["label", "bbox_2d"]
    create_kwargs = rows[0]["extra_info"]["tools_kwargs"]["image_zoom_in_tool"]["create_kwargs"]

    async def call(request_id, parameters):
        instance_id, _ = await tool.create(create_kwargs=create_kwargs)
        try:
            return await tool.execute(instance_id, parameters, agent_data=SimpleNamespace(request_id=request_id))
        finally:
            await tool.release(instance_id)

    async def scenario():
        first = await call("traj-a", {"label": "red tile", "bbox_2d": BOX})
        nested = await call("traj-a", {"label": "red tile", "bbox_2d": [0, 0, 56, 56], "image_index": 1})
        other = await call("traj-b", {"label": "red tile", "bbox_2d": [0, 0, 56, 56], "image_index": 1})
        bad = await call("traj-c", {"label": "x", "bbox_2d": [1, 2]})
        return first, nested, other, bad

    first, nested, other, bad = asyncio.run(scenario())
    dialect_call = mapo_verl.MapoEnvFactory(ENV_ID)().env.unwrapped.dialect.format_tool_call
    observations, _, infos = reference_episode(
        rows[0], [dialect_call(BOX, label="red tile"), dialect_call([0, 0, 56, 56], label="red tile", image_index=1)]
    )
    for (response, reward, metrics), obs, info in zip((first, nested), observations, infos):
        assert np.array_equal(np.asarray(response.image[0]), obs["images"][-1])
        assert reward == pytest.approx(info["alignment"]) and metrics["failed"] is False
    assert other[0].image is None and other[1] == 0.0  # traj-b has no crop 1: its own episode
    assert bad[0].image is None and bad[0].text.startswith("Error") and bad[2]["failed"] is True
    assert len(tool.episodes) == 3


# -------------------------------------------------------------------------------- agent loop


class PILMessagesDataset(RLHFDataset):
    """verl's dataset class with the image extraction done on the PIL images in the messages.

    ``RLHFDataset`` extracts images with ``qwen_vl_utils``, which imports torchvision (a real run has it
    from vLLM; this project does not install it). The images here are already PIL and sized to
    multiples of 28, which is all ``qwen_vl_utils.process_vision_info`` would produce from them.
    """

    @classmethod
    def _process_multi_modal_info(cls, messages, image_patch_size, config):
        images = [
            part["image"]
            for message in messages
            if isinstance(message.get("content"), list)
            for part in message["content"]
            if isinstance(part, dict) and part.get("type") == "image"
        ]
        return images or None, None, None


class ReplayServer:
    """A fake LLM server: replays scripted turns as token ids and records what it was given."""

    def __init__(self, tokenizer, turns):
        self.tokenizer = tokenizer
        self.turns = list(turns)
        self.calls = []

    async def generate(self, request_id, prompt_ids, sampling_params, image_data=None, **kwargs):
        self.calls.append({"request_id": request_id, "prompt_ids": list(prompt_ids), "images": list(image_data or [])})
        text = self.turns[len(self.calls) - 1]
        return TokenOutput(token_ids=self.tokenizer.encode(text + "<|im_end|>", add_special_tokens=False))


def agent_loop_config():
    return OmegaConf.create(
        {
            "actor_rollout_ref": {
                "rollout": {
                    "prompt_length": 1024,
                    "response_length": 1024,
                    "full_determinism": False,
                    "multi_turn": {
                        "max_user_turns": 4,
                        "max_assistant_turns": 4,
                        "max_parallel_calls": 1,
                        "max_tool_response_length": 512,
                        "tool_response_truncate_side": "middle",
                        "format": "hermes",
                    },
                }
            }
        }
    )


def test_tool_agent_loop_episode_with_a_replaying_server(tool_config, rows):
    row = rows[1]
    processor = load_image_processor(bundled_model_path())
    tokenizer = processor.tokenizer
    letter = row["reward_model"]["ground_truth"]
    server = ReplayServer(tokenizer, [zoom_text(BOX), f"<answer>{letter}</answer>"])
    tools = initialize_tools_from_config(str(tool_config))
    image = Image.open(io.BytesIO(row["images"][0]["bytes"])).convert("RGB")
    text = row["prompt"][-1]["content"].replace("<image>", "")
    messages = [
        row["prompt"][0],
        {"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": text}]},
    ]

    async def episode():  # verl's agent loop binds the running event loop at construction
        loop = ToolAgentLoop(
            trainer_config=DictConfigWrap(agent_loop_config()),
            server_manager=server,
            tokenizer=tokenizer,
            processor=processor,
            dataset_cls=PILMessagesDataset,
            data_config=DictConfigWrap(OmegaConf.create({})),
            hf_model_type="qwen2_5_vl",
            tools=ToolListWrap(tools),
        )
        return await loop.run(
            sampling_params={},
            raw_prompt=messages,
            extra_info=row["extra_info"],
            tools_kwargs=row["extra_info"]["tools_kwargs"],
        )

    output = asyncio.run(episode())
    dialect_call = mapo_verl.MapoEnvFactory(ENV_ID)().env.unwrapped.dialect.format_tool_call
    observations, env_reward, infos = reference_episode(
        row, [dialect_call(BOX, label="red tile"), f"<answer>{letter}</answer>"]
    )
    crop = observations[0]["images"][-1]
    # the crop reached the second generation and the trajectory's images
    assert len(server.calls) == 2 and len(server.calls[1]["images"]) == 2
    assert np.array_equal(np.asarray(server.calls[1]["images"][1]), crop)
    assert np.array_equal(np.asarray(output.multi_modal_data["images"][1]), crop)
    # the alignment is the tool reward
    assert output.extra_fields["tool_rewards"] == [pytest.approx(infos[0]["alignment"])]
    # compute_score on verl's view of the episode gives the env's reward
    response = tokenizer.decode(output.response_ids, skip_special_tokens=True)
    extra_info = dict(row["extra_info"], tool_rewards=output.extra_fields["tool_rewards"])
    score = mapo_verl.compute_score(ENV_ID, response, letter, extra_info)
    assert score["outcome"] == pytest.approx(env_reward) and score["correct"] == 1.0
    assert score["semantic"] == pytest.approx(infos[0]["alignment"]) and score["score"] == score["outcome"]
    # tool tokens are masked out of the response mask; the prompt carried the tool schema
    assert 0 in output.response_mask and 1 in output.response_mask
    assert '"name": "image_zoom_in_tool"' in tokenizer.decode(server.calls[0]["prompt_ids"])


# ------------------------------------------------------------------------------------- config

NEW_KEYS = {
    "algorithm.mapo",  # ours: read by the mapo estimator
    "algorithm.gdpo_reward_keys",  # AlgoConfig fields verl's YAML leaves out
    "algorithm.gdpo_reward_weights",
    "reward.custom_reward_function.reward_kwargs",  # read by verl's get_custom_reward_fn
    "ray_kwargs.ray_init.runtime_env.worker_process_setup_hook",  # Ray's runtime_env field
}


def key_paths(node, prefix=""):
    if not isinstance(node, dict):
        return {prefix}
    out = set()
    for key, value in node.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        out |= {path} if any(path == k or path.startswith(k + ".") for k in NEW_KEYS) else key_paths(value, path)
    return out


def test_example_config_composes_on_verls_schema():
    from hydra import compose, initialize_config_dir, initialize_config_module
    from verl.trainer.ppo.reward import get_custom_reward_fn

    config_dir = str(ROOT / "configs" / "verl")
    with initialize_config_dir(config_dir=config_dir, version_base=None):
        ours = compose(config_name="mapo_qwen25vl_7b")
    with initialize_config_module(config_module="verl.trainer.config", version_base=None):
        base = compose(config_name="ppo_trainer")
    raw = OmegaConf.to_container(OmegaConf.load(ROOT / "configs" / "verl" / "mapo_qwen25vl_7b.yaml"))
    raw.pop("hydra"), raw.pop("defaults")
    known = key_paths(OmegaConf.to_container(base))
    unknown = sorted(p for p in key_paths(raw) if p not in known and not any(p.startswith(k) for k in NEW_KEYS))
    assert not unknown, f"keys verl 0.9.1 does not know: {unknown}"
    assert ours.algorithm.adv_estimator == "mapo" and ours.trainer.use_v1 is False
    assert mapo_verl_agent.advantage_config(ours.algorithm).semantic_coef == 0.4
    assert (ROOT / ours.actor_rollout_ref.rollout.multi_turn.tool_config_path).is_file()
    setup_hook = ours.ray_kwargs.ray_init.runtime_env.worker_process_setup_hook
    module, _, name = setup_hook.rpartition(".")
    assert getattr(__import__(module, fromlist=[name]), name) is mapo_verl_agent.install
    score_fn = get_custom_reward_fn(ours)  # verl loads our compute_score from the pkg:// path
    result = score_fn(
        data_source=ENV_ID, solution_str="<answer>A</answer>", ground_truth="A", extra_info={"options": ["x", "y"]}
    )
    assert result == mapo_verl.compute_score(ENV_ID, "<answer>A</answer>", "A", {"options": ["x", "y"]})
