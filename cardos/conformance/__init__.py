"""The conformance suite: does a card behave like a CJ/T 304-style city card?

A pytest suite written only from the card's external behaviour (command
APDUs in, responses out), so the same tests judge the cardos emulator in
this process, the emulator behind a real pcscd (vpcd), or any card in any
PC/SC reader. See ``docs/conformance.md``.

* :mod:`cardos.conformance.plugin` — the pytest plugin (``pytest11`` entry
  point): ``--cardos-*`` options, markers, collection of the suite, the
  per-command summary table, JUnit properties.
* :mod:`cardos.conformance.targets` — what the suite talks to.
* :mod:`cardos.conformance.channel` — APDU exchange, expectations, traces.
* :mod:`cardos.conformance.apdus` — command builders written from the reference.
* :mod:`cardos.conformance.baseline` — bringing the card into a known state
  (issuance with a key set, the scratch DF), card identity for the serial guard.
* :mod:`cardos.conformance.purse` — the purse terminal of the suite (MAC1/MAC2/TAC checks).
* :mod:`cardos.conformance.summary` — the summary table.
* :mod:`cardos.conformance.runner` — ``cardos conformance``.
* ``cardos/conformance/suite/check_*.py`` — the tests, one module per command family.

Nothing here imports the emulator's internals: the suite uses only the
terminal side (``cardos.terminal``, ``cardos.crypto``, ``cardos.keyset``,
``cardos.personalize``) and, to create an emulated target, ``cardos.Card``.
"""
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
SUITE_DIR = PACKAGE_DIR / "suite"
