"""Planner: fuse consecutive partition stages into one task per shard; a barrier at each global stage."""

from __future__ import annotations

from dataclasses import dataclass

from curate.config import Pipeline, StageSpec, fingerprint


@dataclass(frozen=True)
class Segment:
    """A run of stages executed together: fused partition stages, or one global stage."""

    index: int
    stages: tuple[StageSpec, ...]
    fingerprint: str  # covers this segment and every segment before it
    is_global: bool
    is_last: bool

    @property
    def dirname(self) -> str:
        return f"segment-{self.index:02d}"

    @property
    def label(self) -> str:
        ids = [s.id for s in self.stages]
        return ids[0] if len(ids) == 1 else f"{ids[0]} → {ids[-1]}"


def plan(pipeline: Pipeline) -> list[Segment]:
    """Split the stage list at global stages; each segment's fingerprint chains the previous one."""
    groups: list[tuple[list[StageSpec], bool]] = []
    for spec in pipeline.stages:
        if spec.cls.kind == "global":
            groups.append(([spec], True))
        elif groups and not groups[-1][1]:
            groups[-1][0].append(spec)
        else:
            groups.append(([spec], False))
    segments: list[Segment] = []
    parent = ""
    for i, (specs, is_global) in enumerate(groups):
        parent = fingerprint(specs, parent)
        segments.append(
            Segment(
                index=i,
                stages=tuple(specs),
                fingerprint=parent,
                is_global=is_global,
                is_last=i == len(groups) - 1,
            )
        )
    return segments
