"""Several run directories -> the atlas (ATLAS.md): for each claim of the information-bottleneck debate, one
declared primary endpoint measured on independent networks, per-study effects with small-sample intervals,
a random-effects pooled effect and its decision, and the specification curve apart.

Data flow: run directories -> registry (compact per-network tables, network identity) -> endpoints -> effects
(per study) -> pooling (decision, Holm, TOST) -> write (ATLAS.md); sensitivity re-runs the same with every
specification. `python -m ibjax.atlas RUN_DIR...` or `--tables DIR` (__main__.py).
"""

from ibjax.atlas.analysis import Entry, analyse, claim_entries, entries_frame
from ibjax.atlas.effects import (
    Effect,
    mean_effect,
    paired_binary_effect,
    paired_mean_effect,
    spearman_effect,
    tango_interval,
)
from ibjax.atlas.endpoints import ENDPOINTS, PRIMARY, PRIMARY_BY_CLAIM, Endpoint, Spec
from ibjax.atlas.pooling import Pooled, decide, holm, pool
from ibjax.atlas.registry import StudyTables, read_tables, study_tables, write_tables
from ibjax.atlas.sensitivity import agreement, specification_curve
from ibjax.atlas.studies import CLAIMS, STUDIES, Claim, Study
from ibjax.atlas.write import Atlas, build_atlas, load_studies, write_atlas

__all__ = [
    "CLAIMS",
    "ENDPOINTS",
    "PRIMARY",
    "PRIMARY_BY_CLAIM",
    "STUDIES",
    "Atlas",
    "Claim",
    "Effect",
    "Endpoint",
    "Entry",
    "Pooled",
    "Spec",
    "Study",
    "StudyTables",
    "agreement",
    "analyse",
    "build_atlas",
    "claim_entries",
    "decide",
    "entries_frame",
    "holm",
    "load_studies",
    "mean_effect",
    "paired_binary_effect",
    "paired_mean_effect",
    "pool",
    "read_tables",
    "spearman_effect",
    "specification_curve",
    "study_tables",
    "tango_interval",
    "write_atlas",
    "write_tables",
]
