"""In-process: ``Card.transmit`` called directly, persistence off (memory) and on (image file).

Rounds alternate persistence off / on, and — when vicc is there — vicc's
``Iso7816OS.execute`` in its worker process, so the three are measured
side by side under the same machine load.
"""
from __future__ import annotations

import os
import tempfile

from .. import image
from ..keyset import load as load_keyset
from .stats import sample, summary
from .workload import OPS, TRANSACTIONS, Terminal, bench_profile, check, make_card

MODES = ("off", "on")


def run(cfg, vicc=None, say=print) -> dict:
    """``cfg``: ``apdus`` samples per APDU, ``transactions`` per transaction, ``rounds``,
    ``image_dir``. ``vicc``: a started :class:`cardos.bench.vicc.InProcessWorker` or None."""
    keys = load_keyset("test")
    profile = bench_profile()
    workdir = tempfile.mkdtemp(prefix="cardos-bench-", dir=cfg.image_dir)
    cards, terminals = {}, {}
    for i, mode in enumerate(MODES):
        card = make_card(100 + i, keys, profile)
        if mode == "on":
            card.save_as(os.path.join(workdir, "inprocess.card"))
        cards[mode] = card
        terminals[mode] = Terminal(card.transmit, keys)
        card.power_on()
    for mode, card in cards.items():
        for op in OPS:
            if op.setup:
                card.transmit(op.setup)
            check(op, card.transmit(op.apdu), f"cardos (persistence {mode})")

    rounds = cfg.rounds
    n_apdu = max(1, cfg.apdus // rounds)
    n_tx = max(1, cfg.transactions // rounds)
    samples = {mode: {op.key: [] for op in OPS} for mode in MODES}
    tx_samples = {mode: {key: [] for key, _ in TRANSACTIONS} for mode in MODES}
    commit_samples = {"serialize": [], "write": []}
    vicc_samples: dict = {}
    say(f"in-process: {rounds} rounds x {n_apdu} APDUs per kind, {n_tx} transactions per kind")
    for _ in range(rounds):
        for mode in MODES:
            card = cards[mode]
            transmit = card.transmit
            for op in OPS:
                if op.setup:
                    transmit(op.setup)
                apdu = op.apdu
                samples[mode][op.key] += sample(lambda t=transmit, a=apdu: t(a), n_apdu, warmup=min(200, n_apdu))
            terminal = terminals[mode]
            for key, _title in TRANSACTIONS:
                tx_samples[mode][key] += sample(getattr(terminal, key), n_tx, warmup=min(20, n_tx))
            if mode == "on":  # a commit's two halves: the JSON text, then temporary file + rename
                text = image.dumps(card)
                commit_samples["serialize"] += sample(lambda c=card: image.dumps(c), n_tx)
                commit_samples["write"] += sample(lambda s=card._store, t=text: s.write(t), n_tx)
        if vicc is not None:
            for key, values in vicc.round(n_apdu).items():
                vicc_samples.setdefault(key, []).extend(values)
    result = {"apdus": {mode: {op.key: summary(samples[mode][op.key]) for op in OPS} for mode in MODES},
              "transactions": {mode: {key: summary(tx_samples[mode][key]) for key, _ in TRANSACTIONS}
                               for mode in MODES},
              "commit": {key: summary(v) for key, v in commit_samples.items()}}
    if vicc is not None:
        result["vicc"] = {key: summary(values) for key, values in vicc_samples.items()}
    cards.clear()
    _remove_tree(workdir)
    return result


def _remove_tree(path: str) -> None:
    for name in os.listdir(path):
        os.unlink(os.path.join(path, name))
    os.rmdir(path)
