"""The torture suite's engine, shared by ``bench/torture.py`` and ``tests/e2e/test_faults_*.py``.

One implementation of the fault injectors (``_faults``), the inputs
(``_inputs``), the small disk (``_disk``), the audit (``_audit``) and the run
itself (``_harness``). ``docs/reliability.md`` describes what each fault does
and what must hold.
"""

from tests._torture._audit import AuditResult, Planted, StationLayout, audit, find_orphans
from tests._torture._faults import ALL_KINDS, REJECT_MESSAGE, parse_kinds
from tests._torture._harness import Settings, Torture, TortureResult, run_checked
from tests._torture._inputs import BAD_KINDS, VALID_KINDS, Dropped, InputMaker

__all__ = [
    "ALL_KINDS",
    "BAD_KINDS",
    "REJECT_MESSAGE",
    "VALID_KINDS",
    "AuditResult",
    "Dropped",
    "InputMaker",
    "Planted",
    "Settings",
    "StationLayout",
    "Torture",
    "TortureResult",
    "audit",
    "find_orphans",
    "parse_kinds",
    "run_checked",
]
