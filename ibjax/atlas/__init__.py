"""Several run directories -> the claims table (ATLAS.md): for each claim of the information-bottleneck debate,
the evidence of every study that bears on it, with intervals, and a verdict with its robustness.

`python -m ibjax.atlas RUN_DIR...` (__main__.py). Reads run directories only, through ibjax.report.
"""

from ibjax.atlas.claims import claim_table, verdict_of
from ibjax.atlas.evidence import RULES, StudyRun, compression_factors, load_study, study_evidence
from ibjax.atlas.studies import CLAIMS, STUDIES, Claim, Study
from ibjax.atlas.write import build_atlas, write_atlas

__all__ = [
    "CLAIMS",
    "RULES",
    "STUDIES",
    "Claim",
    "Study",
    "StudyRun",
    "build_atlas",
    "claim_table",
    "compression_factors",
    "load_study",
    "study_evidence",
    "verdict_of",
    "write_atlas",
]
