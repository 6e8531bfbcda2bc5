"""Plausible wrong answers to the exercises of 04_ppo_rlhf; each must fail at least one test of its exercise.

WRONG = {function_name: [(description, source of a wrong definition), ...]}
"""

WRONG = {
    "ranking_to_pairs": [
        ("ties turned into pairs", '''
def ranking_to_pairs(ranking):
    if not ranking.strip():
        raise ValueError("empty")
    labels = [l.strip() for l in ranking.replace("=", ">").split(">")]
    return [(labels[i], labels[j]) for i in range(len(labels)) for j in range(i + 1, len(labels))]
'''),
        ("only adjacent levels compared", '''
def ranking_to_pairs(ranking):
    if not ranking.strip():
        raise ValueError("empty")
    levels = [[l.strip() for l in level.split("=")] for level in ranking.split(">")]
    return [(w, l) for upper, lower in zip(levels, levels[1:]) for w in upper for l in lower]
'''),
        ("pairs as (loser, winner)", '''
def ranking_to_pairs(ranking):
    if not ranking.strip():
        raise ValueError("empty")
    levels = [[l.strip() for l in level.split("=")] for level in ranking.split(">")]
    return [(l, w) for i, upper in enumerate(levels) for lower in levels[i + 1:] for w in upper for l in lower]
'''),
        ("no ValueError on an empty ranking", '''
def ranking_to_pairs(ranking):
    levels = [[l.strip() for l in level.split("=")] for level in ranking.split(">")]
    return [(w, l) for i, upper in enumerate(levels) for lower in levels[i + 1:] for w in upper for l in lower]
'''),
        ("labels not stripped", '''
def ranking_to_pairs(ranking):
    if not ranking.strip():
        raise ValueError("empty")
    levels = [level.split("=") for level in ranking.split(">")]
    return [(w, l) for i, upper in enumerate(levels) for lower in levels[i + 1:] for w in upper for l in lower]
'''),
    ],
    "reward_model_loss": [
        ("sigmoid then log (overflows for margins of 1e4)", '''
def reward_model_loss(chosen_rewards, rejected_rewards):
    if chosen_rewards.shape != rejected_rewards.shape:
        raise ValueError("shapes")
    return -torch.log(torch.sigmoid(chosen_rewards - rejected_rewards)).mean()
'''),
        ("margin reversed (rejected - chosen)", '''
def reward_model_loss(chosen_rewards, rejected_rewards):
    if chosen_rewards.shape != rejected_rewards.shape:
        raise ValueError("shapes")
    return -F.logsigmoid(rejected_rewards - chosen_rewards).mean()
'''),
        ("sum instead of mean", '''
def reward_model_loss(chosen_rewards, rejected_rewards):
    if chosen_rewards.shape != rejected_rewards.shape:
        raise ValueError("shapes")
    return -F.logsigmoid(chosen_rewards - rejected_rewards).sum()
'''),
        ("no shape check (RuntimeError instead of ValueError)", '''
def reward_model_loss(chosen_rewards, rejected_rewards):
    return -F.logsigmoid(chosen_rewards - rejected_rewards).mean()
'''),
    ],
    "ppo_clip_loss": [
        ("max instead of min", '''
def ppo_clip_loss(logps, old_logps, advantages, mask, clip_eps=0.2):
    if not (logps.shape == old_logps.shape == advantages.shape == mask.shape):
        raise ValueError("shapes")
    ratio = torch.exp(logps - old_logps.detach())
    adv = advantages.detach()
    obj = torch.maximum(ratio * adv, ratio.clamp(1 - clip_eps, 1 + clip_eps) * adv)
    return -(obj * mask).sum() / logps.shape[0]
'''),
        ("ratio inverted", '''
def ppo_clip_loss(logps, old_logps, advantages, mask, clip_eps=0.2):
    if not (logps.shape == old_logps.shape == advantages.shape == mask.shape):
        raise ValueError("shapes")
    ratio = torch.exp(old_logps.detach() - logps)
    adv = advantages.detach()
    obj = torch.minimum(ratio * adv, ratio.clamp(1 - clip_eps, 1 + clip_eps) * adv)
    return -(obj * mask).sum() / logps.shape[0]
'''),
        ("advantage clipped instead of the ratio", '''
def ppo_clip_loss(logps, old_logps, advantages, mask, clip_eps=0.2):
    if not (logps.shape == old_logps.shape == advantages.shape == mask.shape):
        raise ValueError("shapes")
    ratio = torch.exp(logps - old_logps.detach())
    adv = advantages.detach()
    obj = torch.minimum(ratio * adv, ratio * adv.clamp(1 - clip_eps, 1 + clip_eps))
    return -(obj * mask).sum() / logps.shape[0]
'''),
        ("gradient flows into old_logps and advantages", '''
def ppo_clip_loss(logps, old_logps, advantages, mask, clip_eps=0.2):
    if not (logps.shape == old_logps.shape == advantages.shape == mask.shape):
        raise ValueError("shapes")
    ratio = torch.exp(logps - old_logps)
    obj = torch.minimum(ratio * advantages, ratio.clamp(1 - clip_eps, 1 + clip_eps) * advantages)
    return -(obj * mask).sum() / logps.shape[0]
'''),
        ("mean over tokens instead of (1/B) sum_t", '''
def ppo_clip_loss(logps, old_logps, advantages, mask, clip_eps=0.2):
    if not (logps.shape == old_logps.shape == advantages.shape == mask.shape):
        raise ValueError("shapes")
    mask = mask.to(logps.dtype)
    ratio = torch.exp(logps - old_logps.detach())
    adv = advantages.detach()
    obj = torch.minimum(ratio * adv, ratio.clamp(1 - clip_eps, 1 + clip_eps) * adv)
    return -(obj * mask).sum() / mask.sum()
'''),
        ("mask ignored", '''
def ppo_clip_loss(logps, old_logps, advantages, mask, clip_eps=0.2):
    if not (logps.shape == old_logps.shape == advantages.shape == mask.shape):
        raise ValueError("shapes")
    ratio = torch.exp(logps - old_logps.detach())
    adv = advantages.detach()
    obj = torch.minimum(ratio * adv, ratio.clamp(1 - clip_eps, 1 + clip_eps) * adv)
    return -obj.sum() / logps.shape[0]
'''),
    ],
    "kl_penalized_rewards": [
        ("score added at the first token", '''
def kl_penalized_rewards(scores, logps, ref_logps, mask, beta):
    if logps.shape != ref_logps.shape or mask.shape != logps.shape or scores.shape != logps.shape[:1]:
        raise ValueError("shapes")
    r = (-beta * (logps - ref_logps) * mask.to(logps.dtype)).detach().clone()
    r[:, 0] += scores
    return r
'''),
        ("score added at the last position (padding)", '''
def kl_penalized_rewards(scores, logps, ref_logps, mask, beta):
    if logps.shape != ref_logps.shape or mask.shape != logps.shape or scores.shape != logps.shape[:1]:
        raise ValueError("shapes")
    r = (-beta * (logps - ref_logps) * mask.to(logps.dtype)).detach().clone()
    r[:, -1] += scores
    return r
'''),
        ("beta outside the bracket", '''
def kl_penalized_rewards(scores, logps, ref_logps, mask, beta):
    if logps.shape != ref_logps.shape or mask.shape != logps.shape or scores.shape != logps.shape[:1]:
        raise ValueError("shapes")
    m = mask.to(logps.dtype)
    r = ((-beta * logps - ref_logps) * m).detach().clone()
    last = (m.cumsum(-1) * m).argmax(-1)
    r[torch.arange(len(r)), last] += scores
    return r
'''),
        ("KL sign flipped", '''
def kl_penalized_rewards(scores, logps, ref_logps, mask, beta):
    if logps.shape != ref_logps.shape or mask.shape != logps.shape or scores.shape != logps.shape[:1]:
        raise ValueError("shapes")
    m = mask.to(logps.dtype)
    r = (beta * (logps - ref_logps) * m).detach().clone()
    last = (m.cumsum(-1) * m).argmax(-1)
    r[torch.arange(len(r)), last] += scores
    return r
'''),
        ("not detached", '''
def kl_penalized_rewards(scores, logps, ref_logps, mask, beta):
    if logps.shape != ref_logps.shape or mask.shape != logps.shape or scores.shape != logps.shape[:1]:
        raise ValueError("shapes")
    m = mask.to(logps.dtype)
    last = (m.cumsum(-1) * m).argmax(-1)
    bonus = torch.zeros_like(m)
    bonus[torch.arange(len(m)), last] = scores.to(m.dtype)
    return -beta * (logps - ref_logps) * m + bonus
'''),
    ],
}
