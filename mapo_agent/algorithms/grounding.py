"""Grounded SFT: oracle behaviour cloning plus dense grounding losses, the cold start of the bundled agent.

Plain SFT on zoom trajectories teaches the format at once but not *where* to zoom: the box numbers
depend on the image through a long chain (the question names a colour -> find the image token of
that colour -> read its position -> write it as number tokens), and one next-token loss on four
numbers per episode gives that chain almost no gradient. A from-scratch model stays at chance for
hundreds of steps (``docs/learning.md``). Grounded SFT adds two dense, generic terms that supervise
each link, the way vision-language models get grounding data before instruction tuning:

- **Dense captions** (``caption_coef``): every image token that an annotated object covers predicts,
  through the language-model head, the words of that object and some of its box coordinates as
  number tokens (in the environment's coordinate frame, relative to that image). Read at the
  residual stream before layer ``caption_layer`` (0 = the vision features as the language model
  receives them), this makes an image token *look like* the words that name it: the token of the
  red tile carries the embeddings of ``red`` and of its ``x1``. Downsampled images predict the
  object's name; images shown at full resolution or magnified (crops) predict its caption with
  attributes (what only a close look shows, e.g. the pattern).
- **Pointing** (``pointing_coef``): in the first ``pointing_heads`` heads of each layer of
  ``pointing_layers``, every token of a zoom call attends to the image tokens of the object the call
  zooms on (in the full view). Attention then moves the grounded embeddings of that token to the
  call, and the tied LM head reads the coordinates off them: the 2-hop copy becomes supervised.

Both read their ground truth from ``Trajectory.info["grounding"]`` (a :class:`~mapo_agent.types.Grounding`,
attached by the rollout worker for every MAPO environment) and need a
:class:`~mapo_agent.types.GroundablePolicy` (``HFPolicy`` is one). Trajectories without grounding,
or with tool errors, only get the SFT term. Nothing here depends on the environment's task.

Coordinates: by default each token predicts ``x1`` and ``y2`` only. Predicting ``x1`` and ``y1`` (or
all four) makes the token the *sum* of the embeddings of two numbers from the same set, which is
symmetric in rows and columns (the token of cell (r, c) and of cell (c, r) look the same), so a
copy cannot tell which number is the x. ``x1`` and ``y2`` come from disjoint sets on a grid of equal
boxes, which keeps both readable.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch
import torch.nn.functional as F

from mapo_agent.algorithms.base import ALGORITHMS, batch_on_device
from mapo_agent.algorithms.losses import aggregate, masked_mean
from mapo_agent.algorithms.sft import SFT, SFTConfig
from mapo_agent.types import (
    PLAIN_FORWARD,
    ForwardOutput,
    ForwardRequest,
    GroundablePolicy,
    GroundedObject,
    Grounding,
    LossNormalizer,
    TrainBatch,
    Trajectory,
)
from mapo_env.actions import coordinate_decimals, format_coordinate
from mapo_env.errors import ConfigError
from mapo_env.geometry import ImageFrame, box_coverage, written_box

BoxTuple = tuple[float, float, float, float]
COORDINATE_NAMES = ("x1", "y1", "x2", "y2")


@dataclass
class GroundedSFTConfig(SFTConfig):
    """Settings of grounded SFT (plus :class:`SFTConfig`'s).

    Attributes:
        caption_coef: Weight of the dense-caption loss (0 = off).
        caption_layer: Residual stream the captions are read from: 0 = the input embeddings (vision
            features at image tokens), k = after decoder layer k.
        caption_coords: Box coordinates each covered image token predicts, from ``x1``, ``y1``,
            ``x2``, ``y2`` (see the module docstring for why ``x1`` and ``y2``).
        min_coverage: A token belongs to an object when the object covers at least this fraction
            of the token's region, or when the token holds the object's centre (small objects).
        pointing_coef: Weight of the pointing loss (0 = off).
        pointing_layers: Decoder layers (0-based) whose attention is supervised.
        pointing_heads: Number of heads (the first ones) of each of those layers that point.
    """

    caption_coef: float = 0.5
    caption_layer: int = 0
    caption_coords: tuple[str, ...] = ("x1", "y2")
    min_coverage: float = 0.5
    pointing_coef: float = 1.0
    pointing_layers: tuple[int, ...] = (1, 2)
    pointing_heads: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        self.caption_coords = tuple(self.caption_coords)
        self.pointing_layers = tuple(int(x) for x in self.pointing_layers)
        unknown = [c for c in self.caption_coords if c not in COORDINATE_NAMES]
        if unknown:
            raise ConfigError(f"caption_coords must be among {list(COORDINATE_NAMES)}, got {unknown}")
        if self.caption_coef < 0 or self.pointing_coef < 0:
            raise ConfigError(
                f"caption_coef and pointing_coef must be >= 0, got {self.caption_coef}, {self.pointing_coef}"
            )
        if not 0 < self.min_coverage <= 1:
            raise ConfigError(f"min_coverage must be in (0, 1], got {self.min_coverage}")
        if self.caption_layer < 0 or self.pointing_heads < 1 or any(x < 0 for x in self.pointing_layers):
            raise ConfigError(
                "caption_layer and pointing_layers must be >= 0 and pointing_heads >= 1, got "
                f"{self.caption_layer}, {list(self.pointing_layers)}, {self.pointing_heads}"
            )


@dataclass
class GroundingTargets:
    """What the grounding terms supervise in one batch.

    Attributes:
        caption_rows: Batch row of each (image token, target token) pair.
        caption_positions: Position of the image token in its row.
        caption_tokens: The token id it must predict (one pair per word or number of the caption).
        caption_weights: Weight of each pair: ``1 / (pairs of its token * captioned tokens of its image)``,
            so every captioned image counts the same (a crop full of one object does not drown the
            full view) and every token within it too.
        pointing: ``(row, query positions, key positions)``: the tokens of one zoom call, and the
            full-view image tokens of the object it zooms on.
    """

    caption_rows: list[int] = field(default_factory=list)
    caption_positions: list[int] = field(default_factory=list)
    caption_tokens: list[int] = field(default_factory=list)
    caption_weights: list[float] = field(default_factory=list)
    pointing: list[tuple[int, list[int], list[int]]] = field(default_factory=list)


@ALGORITHMS.register("grounded_sft")
class GroundedSFT(SFT):
    """SFT on oracle trajectories + dense captions of image tokens + pointing of zoom calls at their target."""

    config_class = GroundedSFTConfig
    config: GroundedSFTConfig
    rollout_source = "oracle"
    summed_metrics = frozenset({"train/loss", "train/nll"})
    loss_count_names = ("caption_weight", "pointing_events")

    def __init__(self, config: GroundedSFTConfig | None = None) -> None:
        super().__init__(config)
        self._token_cache: dict[str, list[int]] = {}
        self._encoder: Any = None

    def loss(self, policy: GroundablePolicy, batch: TrainBatch) -> tuple[torch.Tensor, dict[str, float]]:
        """SFT NLL + ``caption_coef`` * caption CE + ``pointing_coef`` * pointing NLL, with their metrics."""
        cfg = self.config
        need_caption, need_pointing = cfg.caption_coef > 0, cfg.pointing_coef > 0
        targets = self.targets(policy, batch) if (need_caption or need_pointing) else GroundingTargets()
        # only what is needed, so any TrainablePolicy runs plain SFT on ungrounded batches
        request = ForwardRequest(
            layer_hidden_states=need_caption and bool(targets.caption_tokens),
            attentions=need_pointing and bool(targets.pointing),
        )
        if request != PLAIN_FORWARD:  # a groundable policy: it also takes the speed hint (the loss reads the mask)
            request = replace(request, loss_positions_only=True)
        out = policy.forward(batch, request)
        batch = batch_on_device(batch, out.logprobs)
        nll = aggregate(
            -out.logprobs, batch.loss_mask, cfg.loss_agg_mode, self.norm_length, normalizer=batch.normalizer
        )
        loss = nll
        with torch.no_grad():
            metrics = {
                "train/nll": float(nll.item()),
                "train/entropy": float(masked_mean(out.entropy.detach(), batch.loss_mask).item()),
            }
        if out.layer_hidden_states is not None:
            caption = self._caption_loss(policy, out, targets, batch.normalizer)
            loss = loss + cfg.caption_coef * caption
            metrics["train/caption_loss"] = float(caption.item())
        if out.attentions is not None:
            pointing, mass = self._pointing_loss(out, targets, batch.normalizer)
            loss = loss + cfg.pointing_coef * pointing
            metrics["train/pointing_loss"] = float(pointing.item())
            metrics["train/pointing_mass"] = mass
        metrics["train/loss"] = float(loss.item())
        return loss, metrics

    def loss_counts(self, policy: GroundablePolicy, batch: TrainBatch) -> dict[str, float]:
        """``caption_weight`` (captioned images: each one's pair weights sum to 1) and ``pointing_events``.

        When the batch is a micro-batch (``batch.normalizer`` set), the caption and pointing terms divide
        by these counts summed over the whole minibatch; a whole batch divides by its own.
        """
        cfg = self.config
        if not (cfg.caption_coef > 0 or cfg.pointing_coef > 0):
            return {"caption_weight": 0.0, "pointing_events": 0.0}
        targets = self.targets(policy, batch)
        return {"caption_weight": float(sum(targets.caption_weights)), "pointing_events": float(len(targets.pointing))}

    # ------------------------------------------------------------------------------------- losses
    def _caption_loss(
        self,
        policy: GroundablePolicy,
        out: ForwardOutput,
        targets: GroundingTargets,
        normalizer: LossNormalizer | None = None,
    ) -> torch.Tensor:
        layers = out.layer_hidden_states
        if self.config.caption_layer >= len(layers):
            raise ConfigError(
                f"caption_layer {self.config.caption_layer} does not exist: the model has {len(layers) - 1} layers "
                f"(use 0..{len(layers) - 1})."
            )
        hidden = layers[self.config.caption_layer]
        rows = torch.as_tensor(targets.caption_rows, device=hidden.device)
        positions = torch.as_tensor(targets.caption_positions, device=hidden.device)
        logits = policy.lm_head_logits(hidden[rows, positions]).float()
        tokens = torch.as_tensor(targets.caption_tokens, device=hidden.device)
        weights = torch.as_tensor(targets.caption_weights, device=hidden.device, dtype=torch.float32)
        per_pair = F.cross_entropy(logits, tokens, reduction="none")
        total = weights.sum() if normalizer is None else normalizer.get("caption_weight")
        return (per_pair * weights).sum() / total

    def _pointing_loss(
        self, out: ForwardOutput, targets: GroundingTargets, normalizer: LossNormalizer | None = None
    ) -> tuple[torch.Tensor, float]:
        attentions = out.attentions
        missing = [layer for layer in self.config.pointing_layers if layer >= len(attentions)]
        if missing:
            raise ConfigError(
                f"pointing_layers {missing} do not exist: the model has {len(attentions)} layers "
                f"(use 0..{len(attentions) - 1})."
            )
        device = attentions[0].device
        length = attentions[0].shape[-1]
        rows = torch.as_tensor([row for row, _, _ in targets.pointing], device=device)
        queries = torch.zeros(len(targets.pointing), length, dtype=torch.bool, device=device)
        keys = torch.zeros(len(targets.pointing), length, dtype=torch.float32, device=device)
        for i, (_, query, key) in enumerate(targets.pointing):
            queries[i, query] = True
            keys[i, key] = 1.0
        per_query = queries.sum(-1).clamp(min=1).float()  # (E,)
        events = len(targets.pointing) if normalizer is None else normalizer.get("pointing_events")
        terms, masses = [], []
        for layer in self.config.pointing_layers:
            probs = attentions[layer][rows, : self.config.pointing_heads].float()  # (E, H, T, T)
            mass = (probs * keys[:, None, None, :]).sum(-1)  # (E, H, T): attention on the target's tokens
            nll = -torch.log(mass + 1e-6) * queries[:, None, :]
            terms.append((nll.sum(-1) / per_query[:, None]).mean(dim=1).sum() / events)  # mean: heads, events
            masses.append(((mass * queries[:, None, :]).sum(-1) / per_query[:, None]).mean().detach())
        return torch.stack(terms).mean(), float(torch.stack(masses).mean().item())

    # ------------------------------------------------------------------------------------ targets
    def targets(self, policy: GroundablePolicy, batch: TrainBatch) -> GroundingTargets:
        """The caption and pointing targets of ``batch`` (empty when no trajectory carries a grounding).

        Raises:
            ConfigError: Some trajectory has a grounding but ``policy`` lacks the
                :class:`~mapo_agent.types.GroundablePolicy` methods.
        """
        targets = GroundingTargets()
        if not any(isinstance(t.info.get("grounding"), Grounding) for t in batch.trajectories):
            return targets
        for name in ("image_tokens", "lm_head_logits", "encode_text"):
            if not callable(getattr(policy, name, None)):
                raise ConfigError(
                    f"grounded_sft needs a policy with {name}() (see mapo_agent.types.GroundablePolicy); "
                    f"{type(policy).__name__} has none. Use sft for other policies."
                )
        if self._encoder is not policy.encode_text:
            self._encoder, self._token_cache = policy.encode_text, {}
        layout = policy.image_tokens(batch)
        for row, trajectory in enumerate(batch.trajectories):
            grounding = trajectory.info.get("grounding")
            if not isinstance(grounding, Grounding) or trajectory.tool_errors:
                continue
            if len(layout[row]) != len(grounding.regions):
                continue  # images and frames do not line up (should not happen with the rollout worker)
            if self.config.caption_coef > 0:
                self._add_captions(targets, row, grounding, layout[row])
            if self.config.pointing_coef > 0:
                self._add_pointing(targets, row, trajectory, grounding, layout[row][0])
        return targets

    def _add_captions(self, targets: GroundingTargets, row: int, grounding: Grounding, images: Sequence[Any]) -> None:
        for region, shown, tokens in zip(grounding.regions, grounding.shown_sizes, images):
            frame = ImageFrame(region, shown)
            magnified = max(frame.scale) <= 1.0
            captioned = []
            for k, cell in enumerate(_token_regions(frame, tokens.grid)):
                obj = _object_at(cell, grounding.objects, self.config.min_coverage)
                if obj is not None:
                    ids = self._encode(obj.caption if magnified else obj.name)
                    captioned.append(
                        (int(tokens.positions[k]), ids + self._coordinate_ids(frame, obj.bbox, grounding.coords))
                    )
            for position, ids in captioned:
                for token in ids:
                    targets.caption_rows.append(row)
                    targets.caption_positions.append(position)
                    targets.caption_tokens.append(token)
                    targets.caption_weights.append(1.0 / (len(ids) * len(captioned)))

    def _add_pointing(
        self, targets: GroundingTargets, row: int, trajectory: Trajectory, grounding: Grounding, view: Any
    ) -> None:
        frame = ImageFrame(grounding.regions[0], grounding.shown_sizes[0])
        cells = _token_regions(frame, view.grid)
        for turn, (start, end) in enumerate(trajectory.turn_spans):
            if turn + 1 >= len(grounding.regions):
                break  # this turn (the answer) produced no crop
            crop = grounding.regions[turn + 1]
            target = max(grounding.targets, key=lambda t: box_coverage(t.bbox, crop), default=None)
            if target is None or box_coverage(target.bbox, crop) <= 0:
                continue
            keys = [
                int(view.positions[k])
                for k, cell in enumerate(cells)
                if _belongs(cell, target.bbox, self.config.min_coverage)
            ]
            if keys:
                targets.pointing.append((row, list(range(start, end)), keys))

    def _encode(self, text: str) -> list[int]:
        if text not in self._token_cache:
            self._token_cache[text] = list(self._encoder(text))
        return self._token_cache[text]

    def _coordinate_ids(self, frame: ImageFrame, bbox: BoxTuple, coords: str) -> list[int]:
        if not self.config.caption_coords:
            return []
        box = written_box(frame.from_original(bbox, coords), coords)  # type: ignore[arg-type]
        numbers = [format_coordinate(x, coordinate_decimals(coords)) for x in box]  # as the oracle writes them
        ids: list[int] = []
        for name in self.config.caption_coords:
            ids += self._encode(numbers[COORDINATE_NAMES.index(name)])
        return ids


def _token_regions(frame: ImageFrame, grid: tuple[int, int]) -> list[BoxTuple]:
    """Region of the original image under each token of an image shown in ``frame`` (raster order)."""
    rows, cols = grid
    width, height = frame.shown_size
    regions = []
    for r in range(rows):
        for c in range(cols):
            cell = (c * width / cols, r * height / rows, (c + 1) * width / cols, (r + 1) * height / rows)
            regions.append(frame.to_original(cell, "pixel"))
    return regions


def _belongs(cell: BoxTuple, bbox: BoxTuple, min_coverage: float) -> bool:
    """Whether the token over ``cell`` shows the object in ``bbox`` (covers enough of it, or holds its centre)."""
    cx, cy = (bbox[0] + bbox[2]) / 2, (bbox[1] + bbox[3]) / 2
    holds_centre = cell[0] <= cx < cell[2] and cell[1] <= cy < cell[3]
    return holds_centre or box_coverage(cell, bbox) >= min_coverage


def _object_at(cell: BoxTuple, objects: Sequence[GroundedObject], min_coverage: float) -> GroundedObject | None:
    """The object a token shows: the one covering most of its region among those it belongs to."""
    best, best_cover = None, -1.0
    for obj in objects:
        if _belongs(cell, obj.bbox, min_coverage):
            cover = box_coverage(cell, obj.bbox)
            if cover > best_cover:
                best, best_cover = obj, cover
    return best
