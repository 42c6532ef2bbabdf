"""manifest.json as typed records: what a sweep records about itself, written and read only through here.

The sweep builds a `Manifest` when it starts and updates it as buckets finish (status, times); the report, the
atlas and notebooks read it. Each key has one declared type and default, so a reader never guesses (`.get`
with a default of its own); a run directory written before a key existed reads with that key's default, and
keys this version does not know are kept (written back unchanged on resume).

Records read as mappings too (`rd.manifest["n_runs"]`, `.get`, `in`), as the JSON file and older notebooks do;
code in ibjax uses the attributes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Status = Literal["running", "done", "interrupted", "failed"]


class Record(BaseModel):
    """A typed record that keeps unknown keys and reads as a read-only mapping of the keys it was given (as the
    JSON file holds them): `rec["k"]` is any declared field (its default where unset) or a kept unknown key;
    `"k" in rec` and `rec.get("k", default)` see only the keys that were given. Iterating a record yields
    (key, value) pairs (pydantic's own), not keys."""

    model_config = ConfigDict(extra="allow", validate_assignment=True)

    def __getitem__(self, key: str):
        if key in type(self).model_fields or key in (self.model_extra or {}):
            return getattr(self, key)
        raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and (key in self.model_fields_set or key in (self.model_extra or {}))

    def get(self, key: str, default=None):
        return self[key] if key in self else default

    def keys(self):
        return [k for k in (*type(self).model_fields, *(self.model_extra or {})) if k in self]


class ShardRecord(Record):
    shard: str  # "I/N"
    status: Literal["running", "done", "interrupted", "failed", "missing"] = "running"


class BucketRecord(Record):
    """One compiled program's networks: its shape, its device memory, and once trained its times."""

    index: int
    n_runs: int
    hidden_pad: list[int] = []
    activations: list[str] = []
    optimizer: str | None = None
    batch_size: int | Literal["full"] | None = None
    quantize_bits: int | None = None
    noise_std: float | None = None
    channels: list[int] | None = None  # conv nets
    dropout: float | None = None
    layers: list[str] = []
    device_bytes: int | None = None  # None where the backend reports no memory
    status: Literal["pending", "running", "done"] = "pending"
    compile_s: float | None = None
    wall_s: float | None = None
    net_epochs_per_s: float | None = None
    checkpoint_s: float | None = None
    resumed_at_chunk: int = 0
    shard: str | None = None  # in a merged sharded manifest: the shard that trained it


class DatasetRecord(Record):
    description: str = ""
    n_rows: int | None = None
    n_features: int | None = None
    image_shape: list[int] = []
    n_classes: int | None = None
    stored_as: Literal["uint8", "float32"] = "float32"
    preprocess: str | None = None
    irrelevant_inputs: int = 0
    n_relevant_inputs: int | None = None
    irrelevant_design: list[int] | None = None  # (relevant patterns, irrelevant draws) of the MI sample
    mi_sample: dict[str, Any] = {}


class ModelRecord(Record):
    kind: str = "mlp"
    module: str | None = None  # a flax model's module path


class Manifest(Record):
    """manifest.json of a sweep, or of one shard (shards/<tag>.json), or the shards' merge (`read_manifest`)."""

    name: str
    source: str = ""
    status: Literal["running", "done", "interrupted", "failed", "incomplete"] = "running"
    environment: dict[str, Any] = {}
    n_runs: int
    mi_epochs: list[int] = []
    n_train: int | None = None
    n_test: int | None = None
    n_mi_samples: int
    dataset: DatasetRecord | None = None  # run directories from before data variants have none
    # Each estimator's kind, its settings and its limits (ceiling_bits, reliable_bits, ...): one dict per
    # estimator, its keys those of its kind (ibjax.mi).
    estimators: list[dict[str, Any]] = []
    model: ModelRecord = ModelRecord()
    shards: list[ShardRecord] = []
    shard_index: int = 0
    shard_count: int = 1
    buckets: list[BucketRecord] = []
    programs: dict[str, Any] = {}  # how the buckets were sized (mode, budget, parts per group)
    resumed: int = 0  # how many times the sweep was continued
    wall_s: float | None = None
    n_diverged: int | None = None
    figures: list[str] = []
    # knn inputs autoencoder: each estimator's autoencoder weights fingerprint (a resume must measure with it)
    autoencoders: dict[str, str] = {}
    # Returned by run_sweep for a directory that was already done; never written.
    nothing_to_do: bool = Field(False, exclude=True)

    def set_status(self, status: Status) -> None:
        """The sweep's status, and its own shard's (the first of its `shards`)."""
        self.status = status
        if self.shards:
            self.shards[0].status = status

    def limits(self) -> dict[str, tuple[float, float]]:
        """Each estimator's recorded (ceiling_bits, reliable_bits) by name; none for run directories older than
        the limits."""
        return {e["name"]: (float(e["ceiling_bits"]), float(e["reliable_bits"]))
                for e in self.estimators if "ceiling_bits" in e and "name" in e}


def parse_manifest(text: str) -> Manifest:
    return Manifest.model_validate(json.loads(text))


# Keys that earlier manifests left out where they do not apply (an MLP's channels, a float network's dropout, an
# unsharded bucket's shard, an MLP's module): still left out, so that the file keeps its shape.
_OMITTED_WHEN_NONE = {"buckets": ("channels", "dropout", "shard"), "model": ("module",)}


def manifest_json(manifest: Manifest) -> str:
    raw = manifest.model_dump()
    for b in raw["buckets"]:
        for key in _OMITTED_WHEN_NONE["buckets"]:
            if b.get(key) is None:
                b.pop(key, None)
    for key in _OMITTED_WHEN_NONE["model"]:
        if raw["model"].get(key) is None:
            raw["model"].pop(key, None)
    # NumPy values (sizing records, estimator settings) as their Python values; anything else as text.
    return json.dumps(raw, indent=2, default=_plain) + "\n"


def _plain(value):
    return value.tolist() if hasattr(value, "tolist") else str(value)


def merge_shards(parts: list[Manifest]) -> Manifest:
    """The manifests of a sharded sweep's shards as one: every shard listed (one with no manifest yet as
    'missing'), their buckets tagged with their shard, status 'done' only when all N shards are done."""
    count = parts[0].shard_count
    by_index = {p.shard_index: p for p in parts}
    shards = [ShardRecord(shard=f"{i}/{count}", status=by_index[i].status if i in by_index else "missing")
              for i in range(count)]
    buckets = [b.model_copy(update={"shard": f"{p.shard_index}/{count}"}) for p in parts for b in p.buckets]
    status = "done" if all(s.status == "done" for s in shards) else "incomplete"
    # Each shard trains the inputs' autoencoders itself (identical on identical machines); where two shards
    # disagree, the merge keeps every fingerprint ("a|b") so that the report can say so.
    autoencoders = {name: "|".join(sorted({p.autoencoders[name] for p in parts if name in p.autoencoders}))
                    for name in dict.fromkeys(n for p in parts for n in p.autoencoders)}
    return parts[0].model_copy(update={"shards": shards, "buckets": buckets, "n_runs": sum(p.n_runs for p in parts),
                                       "status": status, "wall_s": None, "autoencoders": autoencoders})


def read_manifest_file(path: Path) -> Manifest:
    return parse_manifest(Path(path).read_text(encoding="utf-8"))
