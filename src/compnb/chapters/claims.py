"""The claims ledger: every claim of the three papers as the paper states it, beside what this book measured,
the test that judges it, the family the test is corrected in, the power the design has, and a verdict.

The papers' numbers come from `compnb.paper_numbers` (never typed here); the claims and their measurements
are in `claims_paper1`, `claims_paper2` and `claims_paper3`; the tests, corrections and decision rules in
`compnb.verdicts` (vocabulary there: reproduced, contradicted, inconclusive, not testable here, not run).

Families: one per chapter for the papers' claims (every test the ledger reports for that chapter's claims,
Holm over them), and one per chapter for the sanity checks of a method's own aim, which are shown apart and
not counted with the claims. A verdict is *borderline* when its adjusted p lies within a factor of two of α,
or when an earlier full-profile rerun reached another verdict (`HISTORY`).
"""

from __future__ import annotations

import html
import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from compnb import formatting as fmt
from compnb import plots, profiles, tables, verdicts
from compnb.chapters import claims_paper1, claims_paper2, claims_paper3
from compnb.chapters.claim_base import MARGINS, Claim, Measured, csv
from compnb.paths import results_dir

VERDICTS = verdicts.VERDICTS
ALPHA = verdicts.ALPHA
CLAIMS: tuple[Claim, ...] = claims_paper1.CLAIMS + claims_paper2.CLAIMS + claims_paper3.CLAIMS
CH2, CH3, CH4, CH5 = "02-baseline-finetune", "03-modified-loss", "04-adversarial-eval", "05-ig-variance"

# Earlier full-profile reruns whose verdict differs from what a rule gave then (from the committed ledgers in
# git history, under the earlier rules: "reproduced" on p < 0.05 without a family).
HISTORY = {
    "P1-val-gain-snli": "commit df80d11: not reproduced (best +0.006, Holm p = 0.27); commit f5cb1f1: reproduced "
                        "(+0.007, Holm p = 0.049); both reused the selection seed in the test",
    "P2-clean-gain-leak-free": "commit eda48fc, attack on the text: not reproduced (+0.004 [−0.032, +0.040], "
                               "p = 0.66); commit 5a34fee, attack on token ids: reproduced. That rerun retrained "
                               "the baselines too, so GPU rerun noise is part of the change",
}

PAPER_VALUE = "paper's value"
COLUMNS = ["id", "paper", "source", "claim", "metric", "kind", "scope", PAPER_VALUE, "ours", "test", "family",
           "p", "p adjusted", "p opposite adjusted", "margin", "MDE", "units for 80% power", "verdict", "why", "borderline", "compared with",
           "rule", "chapter", "group"]


def _measure(claim: Claim, profile: str) -> Measured:
    folder = results_dir(profile, claim.chapter)
    try:
        return claim.measure(folder)
    except (FileNotFoundError, KeyError, IndexError, StopIteration) as error:  # no result at this profile
        return Measured("—", verdict="not run", why=f"chapter {claim.chapter} has no result for it at profile "
                        f"{profile!r} ({type(error).__name__}: {error})")
    except verdicts.InvalidEvidence as error:  # the result exists but the measurement is undefined (NaN, empty)
        return Measured("—", verdict="not run", why=f"chapter {claim.chapter}'s measurement is undefined at "
                        f"profile {profile!r}: {error}")


def _family_name(claim: Claim) -> str:
    return f"ch. {int(claim.chapter[:2])} {'sanity checks' if claim.aim else 'claims'}"


def _mde_text(evidence: list[verdicts.Evidence], alpha: float) -> tuple[str, str]:
    """The MDE and the units 80% power would need, per test, at level `alpha` (the family's α/m), as text."""
    mdes, needed = [], []
    for e in evidence:
        mde, units = verdicts.power_at(e, alpha)
        if e.test.startswith("exact sign"):
            mdes.append("none at this n" if math.isnan(mde) else f"share {mde:.2f}")
        else:
            mdes.append("none at this n" if math.isnan(mde) else fmt.sig(mde, 2))
        if math.isnan(units):
            needed.append("—")
        elif units > verdicts.MAX_UNITS:
            needed.append(f"> {verdicts.MAX_UNITS:,} {e.unit}")
        else:
            what = f"share {e.target:.2f}" if e.test.startswith("exact sign") else fmt.sig(e.target, 2)
            needed.append(f"{int(units):,} {e.unit} (for {what})")
    return "; ".join(mdes), "; ".join(needed)


def _power_sentence(mde: str, needed: str) -> str:
    """'; …' saying what the design could detect at the family's level, and what 80% power would need."""
    mdes = list(dict.fromkeys(mde.split("; ")))
    if mdes == ["none at this n"]:
        text = "; with this few units no effect is detectable at the family's level"
    else:
        text = f"; the smallest effect detectable with 80% power at the family's level is {' / '.join(mdes)}"
    wanted = [n for n in dict.fromkeys(needed.split("; ")) if n and n != "—"]
    return text + (f"; 80% power would need {' / '.join(wanted)}" if wanted else "")


def _borderline(claim: Claim, p_adjusted: float) -> str:
    flags = []
    if not math.isnan(p_adjusted) and ALPHA / 2 <= p_adjusted < 2 * ALPHA:
        flags.append(f"adjusted {fmt.p_text(p_adjusted)} is within a factor of 2 of α")
    if claim.id in HISTORY:
        flags.append("earlier reruns: " + HISTORY[claim.id])
    return "; ".join(flags)


def ledger(profile: str) -> pd.DataFrame:
    """One row per claim (`COLUMNS`): the claim as stated with its source, metric and kind; the scope of ours;
    our estimate with its interval; the test(s) and their family; the deciding raw and adjusted p; the margin
    of an equivalence claim; the minimum detectable effect and the units 80% power would need (both at α/m,
    the family's Bonferroni level, so that they hold after the correction); the verdict,
    why, the borderline flag; the comparison and rule; and `group` ('claim', 'beyond the paper' or 'sanity
    check')."""
    measured = {c.id: _measure(c, profile) for c in CLAIMS}
    families: dict[str, list[tuple[str, int]]] = {}
    for c in CLAIMS:
        for i, _ in enumerate(measured[c.id].evidence):
            families.setdefault(_family_name(c), []).append((c.id, i))
    adjusted: dict[tuple[str, int], tuple[float, float]] = {}
    sizes = {}
    for name, members in families.items():
        evidence = [measured[cid].evidence[i] for cid, i in members]
        p, against = verdicts.adjust(evidence)
        sizes[name] = verdicts.family_size(evidence)
        adjusted |= {member: (p[k], against[k]) for k, member in enumerate(members)}
    rows = []
    for c in CLAIMS:
        m = measured[c.id]
        row = {"id": c.id, "paper": c.paper, "source": c.source, "claim": c.claim, "metric": c.metric,
               "kind": c.kind, "scope": m.scope, PAPER_VALUE: c.paper_value(), "ours": m.value,
               "compared with": c.recipe, "rule": c.rule, "chapter": c.chapter,
               "group": "sanity check" if c.aim else "beyond the paper" if c.beyond else "claim",
               "margin": f"±{MARGINS[c.margin][0]:g}: {MARGINS[c.margin][1]}" if c.margin else ""}
        if m.evidence:
            pairs = [adjusted[(c.id, i)] for i in range(len(m.evidence))]
            family = _family_name(c)
            judged = verdicts.decide([p for p, _ in pairs], [a for _, a in pairs], m.combine, sizes[family])
            raw = [e.p for e in m.evidence]
            mde, needed = _mde_text(list(m.evidence), ALPHA / max(sizes[family], 1))
            tests = sorted({e.test for e in m.evidence})
            how = {"one": "", "any": f" (any of {len(raw)})", "all": f" (all of {len(raw)})"}[m.combine]
            row |= {"test": "; ".join(tests) + how,
                    "family": f"{family}: {sizes[family]} tests, Holm (Bonferroni for the opposite tests)",
                    "p": "; ".join(fmt.pvalue(p) if not math.isnan(p) else "untestable" for p in raw),
                    "p adjusted": fmt.pvalue(judged.p_adjusted) if not math.isnan(judged.p_adjusted) else "untestable",
                    "p opposite adjusted": fmt.pvalue(judged.p_against_adjusted)
                    if not math.isnan(judged.p_against_adjusted) else "untestable",
                    "MDE": mde, "units for 80% power": needed, "verdict": judged.verdict,
                    "why": judged.why + (_power_sentence(mde, needed) if judged.verdict == "inconclusive" else ""),
                    "borderline": _borderline(c, judged.p_adjusted)}
        else:
            row |= {"test": "", "family": "", "p": "", "p adjusted": "", "p opposite adjusted": "", "MDE": "", "units for 80% power": "",
                    "verdict": m.verdict, "why": m.why, "borderline": _borderline(c, math.nan)}
        rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS)


def claims_only(table: pd.DataFrame) -> pd.DataFrame:
    """The claims the papers make: without the sanity checks and the book's tests beyond the papers."""
    return table[table["group"] == "claim"]


def verdict_counts(table: pd.DataFrame) -> pd.DataFrame:
    """The papers' claims per paper and verdict (sanity checks and tests beyond the papers left out), and how many of them are flagged borderline."""
    table = claims_only(table)
    counts = table.groupby(["paper", "verdict"]).size().unstack(fill_value=0)
    counts = counts.reindex(columns=[v for v in VERDICTS if v in counts.columns])
    counts["borderline"] = table.groupby("paper")["borderline"].apply(lambda s: int((s != "").sum()))
    return counts.reset_index()


COLOURS = {"reproduced": plots.PALETTE[2], "contradicted": plots.PALETTE[3], "inconclusive": plots.PALETTE[1],
           "not testable here": plots.GREY, "not run": plots.PALETTE[6]}


def plot_verdicts(table: pd.DataFrame) -> plt.Axes:
    """The papers' own claims per paper as horizontal bars stacked by verdict."""
    table = claims_only(table)
    counts = table.groupby(["paper", "verdict"]).size().unstack(fill_value=0)
    counts = counts.reindex(columns=[v for v in VERDICTS if v in counts.columns])
    _, axes = plots.book_figure(0.45 * len(counts) + 1.6)
    ax = axes[0, 0]
    left = np.zeros(len(counts))
    for verdict in counts.columns:
        ax.barh([f"paper {p}" for p in counts.index], counts[verdict], left=left, color=COLOURS[verdict], label=verdict)
        left += counts[verdict].to_numpy()
    ax.invert_yaxis()
    ax.set(xlabel="claims", ylabel="")
    ax.grid(axis="y", visible=False)
    plots.legend_above(ax, ncols=3)
    return ax


# The ledger table's last column: labelled lines, the first ones shown, the rest folded under "comparison and test".
SHOWN = ("rule", "why", "⚑ borderline")
FOLDED = ("compared with", "test", "family", "p", "power")


def for_reading(table: pd.DataFrame) -> pd.DataFrame:
    """The ledger as the book shows it, one row per claim: the id; the verdict (⚑ when borderline); the claim
    with its source, metric and the paper's number; ours with its scope; and, as labelled lines ('rule: …'),
    the rule, why and the borderline flag, then what ours is compared with, the test, its family, the
    adjusted p (the opposite test's too) and the power (margin, minimum detectable effect, units 80% power
    would need). Plain text: `ledger_table` renders it, the CSV keeps it as it is."""
    def join(*parts: str) -> str:
        return " · ".join(p for p in parts if p)

    def lines(**parts: str) -> str:
        return "\n".join(f"{label.replace('_', ' ')}: {' '.join(text.split())}" for label, text in parts.items() if text)

    rows = []
    for _, r in table.iterrows():
        p = (f"adjusted {r['p adjusted']} (raw {r['p']}); opposite test adjusted {r['p opposite adjusted']}"
             if r["p adjusted"] else "")
        power = join(f"margin {r['margin'].split(':')[0]}" if r["margin"] else "",
                     f"MDE {r['MDE']}" if r["MDE"] else "", f"80% power: {r['units for 80% power']}"
                     if r["units for 80% power"] not in ("", "—") else "")
        rows.append({"claim": r["id"], "verdict": r["verdict"] + (" ⚑" if r["borderline"] else ""),
                     "the paper claims": f"{r['claim']} ({r['source']}; {r['metric']}): {r[PAPER_VALUE]}",
                     "we found (scope)": lines(ours=r["ours"], scope=r["scope"]),
                     "rule and why": "\n".join(filter(None, [
                         lines(rule=r["rule"], why=r["why"]),
                         f"⚑ borderline: {r['borderline']}" if r["borderline"] else "",
                         lines(compared_with=r["compared with"], test=r["test"], family=r["family"], p=p,
                               power=power)]))})
    return pd.DataFrame(rows)


def _labelled(text: str) -> list[tuple[str, str]]:
    """('label', 'value') per line of a `for_reading` cell."""
    return [tuple(line.split(": ", 1)) for line in text.split("\n") if ": " in line]


def _wide(cell: str) -> str:
    """A text cell kept readable on a phone: at least 13em wide, so the table scrolls sideways instead."""
    return f'<div style="min-width: 13em">{cell}</div>'


def _claim_html(text: str) -> str:
    return _wide(html.escape(text))


def _ours_html(text: str) -> str:
    parts = dict(_labelled(text))
    return _wide(html.escape(parts.get("ours", "")) + (f"<br><small>{html.escape(parts['scope'])}</small>"
                                                       if parts.get("scope") else ""))


def _rule_html(text: str) -> str:
    parts = _labelled(text)

    def block(labels: tuple[str, ...]) -> str:
        return "".join(f"<div><strong>{html.escape(label)}</strong>: {html.escape(value)}</div>"
                       for label, value in parts if label in labels)

    folded = block(FOLDED)
    return _wide(block(SHOWN) + (f"<details><summary>comparison and test</summary>{folded}</details>"
                                 if folded else ""))


def ledger_table(reading: pd.DataFrame, caption: str) -> tables.BookTable:
    """`for_reading`'s rows as one book table: each claim's verdict beside it, ours with its scope, the rule
    and why in the last column with the test, family, p and power folded under a `<details>` there; each
    claim's row is the link target `#claim-<id>` that the chapters' glance boxes point to."""
    return tables.styled(reading, key=["verdict"], anchors="claim-", caption=caption,
                         source="compnb.chapters.claims.for_reading",
                         formats={"claim": html.escape, "verdict": html.escape, "the paper claims": _claim_html,
                                  "we found (scope)": _ours_html, "rule and why": _rule_html})


def margins() -> pd.DataFrame:
    """The equivalence margins with the reason for each size."""
    return pd.DataFrame([(k, v, why) for k, (v, why) in MARGINS.items()], columns=["comparison", "margin", "why"])


def _ch2_snli(folder: Path) -> tuple[float, str]:
    t = csv(folder, "accuracy.csv")
    r = t[(t["dataset"] == "snli") & t["source"].str.startswith("ours")].iloc[0]
    return r["accuracy"], r["accuracy 95% CI"]


def _ch3_snli(folder: Path) -> tuple[float, str]:
    r = csv(folder, "seed_comparison.csv").set_index(["dataset", "config"]).loc[("snli", "baseline")]
    return r["acc"], r["acc 95% CI"]


def _ch4_snli(folder: Path) -> tuple[float, str]:
    r = csv(folder, "seed_means.csv").set_index(["model", "set"]).loc[("baseline", "clean")]
    return r["accuracy"], r["accuracy 95% CI"]


def _ch5_snli(folder: Path) -> tuple[float, str]:
    r = csv(folder, "comparison.csv").set_index(["metric", "variant"]).loc[("accuracy", "baseline")]
    return r["mean"], r["95% CI"]


def recipe(chapter: str, profile: str) -> str:
    """'2 epochs, batch 32, lr 5e-05, 128 tokens, all training pairs': the SNLI training recipe of `chapter` at
    `profile`, read from `compnb.profiles` ('up to N epochs with early stopping' where it has a patience)."""
    s = profiles.settings(chapter, profile)
    rows = s["max_train_examples"]
    rows = rows.get("snli") if isinstance(rows, dict) else rows
    epochs = f"{s['epochs']} epoch{'s' if s['epochs'] != 1 else ''}"
    epochs = f"up to {epochs} with early stopping" if s.get("patience") else epochs
    return (f"{epochs}, batch {s['batch_size']}, lr {s['lr']:g}, {s['max_length']} tokens, "
            + ("all training pairs" if rows is None else f"{rows:,} training pairs"))


# (chapter, split scored on, what it is compared with, reader of (mean, interval text))
SNLI_BASELINES = (
    (CH2, "validation (2k, by premise)", "paper 1's absolute baseline (reference only)", _ch2_snli),
    (CH3, "validation (2k, by premise)", "paper 1's loss configurations (effects)", _ch3_snli),
    (CH4, "evaluation half of the test pool (~1k)", "paper 2", _ch4_snli),
    (CH5, "test (2k)", "paper 3", _ch5_snli),
)


def snli_baselines(profile: str) -> pd.DataFrame:
    """Every SNLI baseline of the book: chapter, recipe, the split it is scored on, accuracy with its interval,
    and the paper it is compared with; they differ because each chapter follows its paper's recipe."""
    rows = []
    for chapter, scored_on, compared_with, read in SNLI_BASELINES:
        try:
            mean, interval = read(results_dir(profile, chapter))
        except (FileNotFoundError, KeyError, IndexError):  # the chapter has no result at this profile
            continue
        rows.append((chapter[:2].lstrip("0"), recipe(chapter, profile), scored_on, f"{mean:.3f} {interval}",
                     compared_with))
    return pd.DataFrame(rows, columns=["chapter", "recipe", "scored on", "accuracy (95% CI over seeds)", "compared with"])


def baselines_reading(table: pd.DataFrame) -> str:
    """Which chapter's SNLI baseline (`snli_baselines`) is the weakest and which the strongest, and why levels
    differ across chapters."""
    if len(table) < 2:
        return "Fewer than two chapters have an SNLI baseline at this profile, so there is nothing to set side by side."
    accuracy = table["accuracy (95% CI over seeds)"].str.split().str[0].map(fmt.parse_number)
    if accuracy.min() == accuracy.max():
        return f"Every chapter's SNLI baseline reaches the same mean accuracy, {accuracy.min():.3f}."
    low, high = table.loc[accuracy.idxmin()], table.loc[accuracy.idxmax()]
    differ = [what for what, column in (("recipes", "recipe"), ("the splits they are scored on", "scored on"))
              if table[column].nunique() > 1]
    why = (f" The {' and '.join(differ)} differ, so their levels differ for {'both reasons' if len(differ) > 1 else 'that reason'}"
           "; each is compared only with its own paper." if differ else " Each is compared only with its own paper.")
    return (f"Chapter {low['chapter']}'s baseline is the weakest ({accuracy.min():.3f}; {low['recipe']}) and "
            f"chapter {high['chapter']}'s the strongest ({accuracy.max():.3f}; {high['recipe']})." + why)


def tested_reading(table: pd.DataFrame) -> str:
    """What the papers' testable claims' verdicts say as a whole: how many of them the design decided, and where
    to read how many more units an undecided one would need."""
    own = claims_only(table)
    tested = own[~own["verdict"].isin(("not testable here", "not run"))]
    if tested.empty:
        return "No claim of the papers could be tested at this profile."
    counts = tested["verdict"].value_counts()
    undecided, decided = int(counts.get("inconclusive", 0)), len(tested) - int(counts.get("inconclusive", 0))
    text = (f"Of the {len(tested)} claims this book can test, the design decided {decided} and left {undecided} "
            "inconclusive.")
    if undecided:
        text += (" An inconclusive row's power column gives the smallest effect the design could detect and how "
                 "many seeds or pairs 80% power would need: the distance between this design and the claim.")
    if counts.get("contradicted", 0):
        text += (" The contradicted rows are those where our measurement is precise enough to exclude the "
                 "paper's claim.")
    return text
