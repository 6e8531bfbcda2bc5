"""The course's lessons as data: every effect a notebook teaches, with a criterion over its ``[result]`` lines.

A notebook prints its figures as ``[result] <notebook>_<metric> = <value>`` (``rlcourse.config.Report``).
A lesson names one number computed from those metrics (``value``, an arithmetic expression over the
notebook's metric names) and a bound it must clear (``op`` and ``bound``)::

    Lesson("03.baseline", "03_actor_critic", "review_score_reinforce_baseline - review_score_reinforce", ">", 0.0,
           "a batch-mean baseline makes REINFORCE learn faster")

``benchmarks/lessons.py`` runs the notebooks over seeds and writes the results ledger
(``benchmarks/ledger/<device>.json``); the notebooks' prose quotes that ledger, and the tests check
that each lesson holds in at least ``REQUIRED_HELD`` of the ledger's seeds. A notebook can print how
its own run did (``print_lessons``): one draw from the distribution the ledger describes.
"""
from __future__ import annotations

import ast
import json
import math
import operator
import re
from dataclasses import dataclass
from pathlib import Path

RESULT_LINE = re.compile(r"^\[result\]\s+(\S+)\s*=\s*(\S+)\s*$")
OPS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}
REQUIRED_HELD = (4, 5)   # a lesson holds in at least 4 of 5 seeds (DEVELOPERS: "every lesson survives a re-run")


class LessonError(ValueError):
    """A lesson that cannot be evaluated: a metric missing from the run, or a malformed expression."""


@dataclass(frozen=True)
class Lesson:
    name: str        # "<notebook number>.<short name>", e.g. "04.overoptimisation"
    notebook: str    # the assignment id whose [result] lines it reads, e.g. "04_ppo_rlhf"
    value: str       # an expression over the notebook's metric names (without the notebook prefix; "." as "_")
    op: str          # ">", ">=", "<" or "<="
    bound: float
    claim: str       # what the prose says, in one sentence

    def __post_init__(self):
        if self.op not in OPS:
            raise LessonError(f"{self.name}: unknown comparison {self.op!r}")
        if not self.name.startswith(self.notebook[:2] + "."):
            raise LessonError(f"{self.name}: a lesson's name starts with its notebook's number ({self.notebook[:2]}.)")
        metric_names(self.value)   # parses, and uses only what evaluate allows

    @property
    def criterion(self) -> str:
        return f"{self.value} {self.op} {self.bound:g}"

    def measure(self, metrics: dict[str, float]) -> float:
        """The lesson's value in one run; ``metrics`` maps metric names (notebook prefix removed) to values."""
        metrics = {name.replace(".", "_"): value for name, value in metrics.items()}   # rl_w0.5_... -> rl_w0_5_...
        missing = sorted(metric_names(self.value) - set(metrics))
        if missing:
            raise LessonError(f"lesson {self.name} needs {', '.join(missing)} from {self.notebook}, "
                              f"which the run did not print")
        return evaluate(self.value, metrics)

    def holds(self, metrics: dict[str, float]) -> bool:
        value = self.measure(metrics)
        return not math.isnan(value) and OPS[self.op](value, self.bound)


# ----------------------------------------------------------------------------- expressions
_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}
_FUNCTIONS = {"min": min, "max": max, "abs": abs}


def _parse(expression: str) -> ast.expr:
    try:
        return ast.parse(expression, mode="eval").body
    except SyntaxError as error:
        raise LessonError(f"not an expression: {expression!r} ({error.msg})") from None


def metric_names(expression: str) -> set[str]:
    """The metric names an expression reads; an error for anything but numbers, names, + - * /, min, max, abs."""
    names: set[str] = set()

    def visit(node):
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            visit(node.left), visit(node.right)
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            visit(node.operand)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCTIONS
              and not node.keywords):
            for arg in node.args:
                visit(arg)
        else:
            raise LessonError(f"{expression!r}: only numbers, metric names, + - * /, min, max and abs are allowed")

    visit(_parse(expression))
    return names


def evaluate(expression: str, metrics: dict[str, float]) -> float:
    """The expression's value with each metric name replaced by its value in ``metrics``."""
    metric_names(expression)

    def value(node) -> float:
        if isinstance(node, ast.Constant):
            return float(node.value)
        if isinstance(node, ast.Name):
            return float(metrics[node.id])
        if isinstance(node, ast.BinOp):
            left, right = value(node.left), value(node.right)
            if isinstance(node.op, ast.Div) and right == 0:
                return math.nan
            return _BINARY[type(node.op)](left, right)
        if isinstance(node, ast.UnaryOp):
            return -value(node.operand)
        return float(_FUNCTIONS[node.func.id](*(value(arg) for arg in node.args)))

    return value(_parse(expression))


def parse_results(lines, notebook: str) -> dict[str, float]:
    """``{metric: value}`` from a run's output lines, for one notebook's ``[result] <notebook>_<metric>`` lines."""
    prefix = notebook + "_"
    metrics = {}
    for line in lines:
        match = RESULT_LINE.match(line.strip().lstrip("| ").strip())
        if match and match.group(1).startswith(prefix):
            try:
                metrics[match.group(1)[len(prefix):]] = float(match.group(2))
            except ValueError:
                continue   # a result that is not a number (a label) is no metric
    return metrics


# ----------------------------------------------------------------------------- the course's lessons
LESSONS: tuple[Lesson, ...] = (
    # 00: demonstrations, then a reward on the model's own samples
    Lesson("00.sft", "00_why_rl", "heldout_accuracy_sft - heldout_accuracy_pretrained", ">=", 0.15,
           "fine-tuning on correct worked solutions raises held-out accuracy by more than 15 points"),
    Lesson("00.rft_keeps", "00_why_rl", "heldout_accuracy_rft - heldout_accuracy_sft", ">=", -0.05,
           "rejection fine-tuning on the SFT model's own correct samples keeps its accuracy (within 5 points)"),
    # 02: Monte Carlo and REINFORCE
    Lesson("02.monte_carlo_rate", "02_policy_gradients", "categorical_mse_ratio_N1_over_N1024 / 1024", ">=", 0.5,
           "the score-function estimator's error falls like 1/N (1024 times more samples, at least 512 times "
           "less error)"),
    Lesson("02.reinforce", "02_policy_gradients", "review_gap_closed", ">=", 0.5,
           "30 REINFORCE steps close at least half the gap between the start and the best possible score"),
    # 03: baselines and the critic
    Lesson("03.two_states", "03_actor_critic", "two_state_variance_ratio_state_over_constant", "<", 0.1,
           "in the two-state example, the state-dependent baseline leaves less than a tenth of the best "
           "constant baseline's variance (computed exactly)"),
    Lesson("03.baseline_variance", "03_actor_critic", "gradient_variance_ratio_baseline_over_reinforce", "<", 0.5,
           "with a reward that is always positive, the batch-mean baseline cuts the gradient's variance by "
           "more than half"),
    Lesson("03.baseline", "03_actor_critic", "review_score_reinforce_baseline - review_score_reinforce", ">", 0.0,
           "REINFORCE with the batch-mean baseline ends above plain REINFORCE"),
    Lesson("03.gae_variance", "03_actor_critic",
           "gradient_variance_ratio_gae_over_reinforce / gradient_variance_ratio_ac_over_reinforce", "<", 0.8,
           "GAE (lambda < 1) leaves at most 80% of the variance of G_t - V(s_t)"),
    Lesson("03.critic_variance", "03_actor_critic",
           "gradient_variance_ratio_gae_over_reinforce / gradient_variance_ratio_baseline_over_reinforce", "<", 0.8,
           "the critic, used through GAE, leaves at most 80% of the batch-mean baseline's variance"),
    Lesson("03.actor_critic", "03_actor_critic", "review_score_actor_critic - review_score_reinforce", ">", 0.0,
           "actor-critic ends above plain REINFORCE"),
    Lesson("03.actor_critic_vs_baseline", "03_actor_critic",
           "review_score_actor_critic - review_score_reinforce_baseline", ">", 0.0,
           "actor-critic (with its critic's warm-up samples) ends above REINFORCE with the batch-mean baseline"),
    # 04: the reward model, PPO, and over-optimisation
    Lesson("04.bandit", "04_ppo_rlhf", "bandit_lr50_locked_on_worse_arm - bandit_lr2_locked_on_worse_arm", ">=", 0.1,
           "on the bandit, large steps lock onto the worse arm in at least 10% more runs than small ones"),
    Lesson("04.reward_model", "04_ppo_rlhf", "rm_heldout_pair_accuracy", ">=", 0.8,
           "the reward model orders at least 80% of held-out pairs as the annotator does"),
    Lesson("04.ppo", "04_ppo_rlhf", "kl_true_score_after - true_score_before", ">=", 0.5,
           "PPO with the KL penalty raises the annotator's true score by at least 0.5"),
    Lesson("04.overoptimisation", "04_ppo_rlhf", "nokl_true_score_fall_from_peak - kl_true_score_fall_from_peak",
           ">=", 0.1,
           "without the KL penalty the true score falls at least 0.1 further from its peak than with it, while "
           "the learned reward stays high: over-optimisation of the learned reward"),
    Lesson("04.kl_anchor", "04_ppo_rlhf", "nokl_kl_to_reference_last / kl_kl_to_reference_last", ">=", 5.0,
           "without the KL penalty the policy ends at least 5 times further (in KL) from the pre-trained one"),
    Lesson("04.best_of_n", "04_ppo_rlhf", "bon_true_score_n64 - bon_true_score_n1", ">=", 0.5,
           "near the pre-trained policy (best-of-64, a KL of 3.2 nats) the learned reward is a good guide: "
           "selecting by it raises the true score by at least 0.5"),
    # 05: GRPO
    Lesson("05.grpo", "05_grpo", "grpo_gain_points", ">=", 15.0,
           "GRPO raises held-out accuracy by at least 15 points"),
    Lesson("05.stops_short", "05_grpo", "stops_short_grpo / max(stops_short_before, 0.001)", "<", 0.5,
           "GRPO more than halves the share of answers that stop short"),
    Lesson("05.dead_groups", "05_grpo", "grpo_dead_groups_last_steps - grpo_dead_groups_first_steps", ">", 0.0,
           "as the policy improves, more groups are all correct and teach nothing"),
    Lesson("05.rft", "05_grpo", "heldout_accuracy_rft - heldout_accuracy_grpo", ">=", -0.05,
           "on this task RFT keeps up with GRPO (within 5 points of held-out accuracy, or ahead)"),
    Lesson("05.unseen_starts", "05_grpo", "grpo_unseen_start - pretrained_unseen_start", ">=", 0.1,
           "the habit goes everywhere: accuracy rises on problems with unseen start numbers too"),
    Lesson("05.miscopied_starts", "05_grpo", "grpo_miscopied_start - pretrained_miscopied_start", ">=", -0.1,
           "the share of miscopied start numbers falls by less than 10 points: no reward points at it"),
    Lesson("05.pass_at_1", "05_grpo", "pass_at_1_grpo - pass_at_1_pretrained", ">=", 0.15,
           "GRPO raises pass@1 by at least 15 points"),
    Lesson("05.sharpening", "05_grpo", "max(pass_at_16_grpo, pass_at_16_rft) - pass_at_16_pretrained", "<=", 0.05,
           "at k = 16 neither trained model is more than 5 points above the pre-trained one: sharpening, "
           "not new ability"),
    # 06: DPO
    Lesson("06.dpo", "06_dpo", "dpo_win_rate", ">", 0.6,
           "the DPO policy's reviews beat the reference's in more than 60% of comparisons"),
    Lesson("06.simpo", "06_dpo", "simpo_win_rate", ">", 0.6,
           "the SimPO policy's reviews beat the reference's in more than 60% of comparisons"),
    Lesson("06.true_score", "06_dpo", "dpo_true_score - reference_true_score", ">", 0.0,
           "DPO raises the annotator's true score above the reference's"),
    Lesson("06.overtraining", "06_dpo", "dpo_eval_true_score_best - dpo_eval_true_score_last", ">=", 0.2,
           "past its best, more DPO steps on the same pairs lower the annotator's score by at least 0.2"),
    Lesson("06.loss_falls", "06_dpo", "dpo_loss_last - dpo_loss_at_steps", "<", 0.0,
           "past STEPS, more steps on the same pairs keep lowering the DPO loss"),
    Lesson("06.off_policy_pairs", "06_dpo", "dpo_win_rate - dpo_offpolicy_far_win_rate", ">", 0.0,
           "at the same budget (rankings, steps, reference), DPO on pairs sampled from the reference itself beats the "
           "reference more often than DPO on pairs from another model far from it (the reference sampled at T = 2)"),
    Lesson("06.online", "06_dpo", "dpo_online_win_rate - dpo_win_rate", ">", 0.0,
           "at the same budget (rankings, steps, reference), online DPO, with fresh pairs from the current policy "
           "every few steps, beats the reference more often than offline DPO on pairs sampled once"),
    # 07: a tool in the loop, at equal supervision; the action mask; abstention judged on the policy's own P(correct)
    Lesson("07.tool_effect", "07_agents", "grpo_calls_accuracy - grpo_nocalls_accuracy", ">=", 0.05,
           "at equal supervision and budget (the same worked solutions, then the same GRPO), the arm with calls "
           "ends at least 5 points of held-out accuracy above the arm without: the tool's own effect"),
    Lesson("07.slips", "07_agents", "grpo_calls_slip_rate / max(grpo_nocalls_slip_rate, 0.001)", "<", 0.5,
           "with the calculator, wrong arithmetic steps (slips) fall to less than half of the arm without calls"),
    Lesson("07.mask_share", "07_agents", "masked_warm_env_grad_share + masked_grpo_env_grad_share", "<=", 0.0,
           "with the action mask the calculator's tokens get exactly none of the gradient"),
    Lesson("07.unmasked_share", "07_agents", "min(unmasked_warm_env_grad_share, unmasked_grpo_env_grad_share)",
           ">=", 0.2, "left in the loss, the calculator's tokens get at least a fifth of the gradient norm, in SFT "
           "and in GRPO"),
    Lesson("07.invented", "07_agents", "unmasked_grpo_invented - masked_grpo_invented", ">=", 0.3,
           "trained on the calculator's tokens, the policy writes the replies itself: with nobody answering, at "
           "least 30 points more of its calls get a made-up result"),
)
# the share of the gap each w must close; with w = 1/2 the gap is the smallest (the threshold rule gains a median
# 0.15 over always answering) and the lowest seed closed exactly a quarter of it: a quarter would hold by rounding
for _w, _name, _share, _words in (("1/2", "0_5", 0.2, "a fifth"), ("1", "1", 0.25, "a quarter"),
                                  ("3", "3", 0.25, "a quarter")):
    LESSONS += (
        Lesson(f"07.abstain_w{_name}", "07_agents", f"rl_w{_name}_policy_reward - rl_w{_name}_always_answer_reward",
               ">", 0.0, f"with w = {_w}, the RL policy's abstentions earn more than the same policy always answering"),
        Lesson(f"07.abstain_w{_name}_gap", "07_agents",
               f"(rl_w{_name}_policy_reward - rl_w{_name}_always_answer_reward) / "
               f"(rl_w{_name}_ideal_reward - rl_w{_name}_always_answer_reward)", ">=", _share,
               f"with w = {_w}, the RL policy closes at least {_words} of the gap from always answering to the "
               "threshold rule on its own P(correct)"),
    )
LESSONS += (Lesson("07.abstain_worth", "07_agents",
                   "min((rl_w1_ideal_reward - rl_w1_always_answer_reward) - (rl_w0_5_ideal_reward - "
                   "rl_w0_5_always_answer_reward), (rl_w3_ideal_reward - rl_w3_always_answer_reward) - "
                   "(rl_w1_ideal_reward - rl_w1_always_answer_reward))", ">", 0.0,
                   "the larger the penalty, the more the threshold rule gains over always answering: knowing when "
                   "to abstain is worth more"),)


def lessons_for(notebook: str) -> list[Lesson]:
    return [lesson for lesson in LESSONS if lesson.notebook == notebook]


def lesson(name: str) -> Lesson:
    for candidate in LESSONS:
        if candidate.name == name:
            return candidate
    raise KeyError(f"no lesson named {name!r}")


def ledger_path(device: str) -> Path:
    """The committed results ledger of a device ("cpu" or "cuda"), beside the package in a course checkout."""
    return Path(__file__).resolve().parents[1] / "benchmarks" / "ledger" / f"{device}.json"


def print_lessons(notebook: str, metrics: dict[str, float], device: str = "cpu", reduced: bool = False) -> None:
    """Print how this run did on each of the notebook's lessons, beside what the ledger measured over seeds."""
    ledger = read_ledger(device)
    ledger = ledger.get("lessons", {})
    if reduced:
        print("[lesson] reduced mode: the lessons are measured in full mode (RLCOURSE_REDUCED=0); "
              "these figures are not comparable")
    for item in lessons_for(notebook):
        try:
            value = item.measure(metrics)
            verdict = "holds" if OPS[item.op](value, item.bound) else "does not hold"
            mine = f"{verdict} in this run ({value:.3g})"
        except LessonError:
            mine = "not measured in this run"
        entry = ledger.get(item.name)
        seen = (f"; the ledger ({device}): held in {entry['held']} of {len(entry['seeds'])} seeds, median "
                f"{entry['median']:.3g}, range {entry['min']:.3g} to {entry['max']:.3g}") if entry and entry.get("seeds") else ""
        print(f"[lesson] {item.name}: {item.claim} [{item.criterion}]: {mine}{seen}")


def read_ledger(device: str = "cpu") -> dict:
    """The committed ledger of a device ({} where there is none, as in a copy without the benchmarks)."""
    try:
        return json.loads(ledger_path(device).read_text())
    except (OSError, ValueError):
        return {}
