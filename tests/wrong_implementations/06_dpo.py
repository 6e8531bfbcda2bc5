"""Plausible wrong answers to the exercises of 06_dpo; each must fail at least one test of its exercise.

WRONG = {function_name: [(description, source of a wrong definition), ...]}
"""


WRONG = {
    "dpo_loss": [
        ("sigmoid then log (overflows for margins of 1e4)", '''
def dpo_loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta=0.1):
    if len({tuple(t.shape) for t in (policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps)}) != 1:
        raise ValueError("shapes")
    z = beta * ((policy_chosen_logps - ref_chosen_logps.detach()) - (policy_rejected_logps - ref_rejected_logps.detach()))
    return -torch.log(torch.sigmoid(z)).mean()
'''),
        ("beta outside the bracket", '''
def dpo_loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta=0.1):
    if len({tuple(t.shape) for t in (policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps)}) != 1:
        raise ValueError("shapes")
    z = beta * (policy_chosen_logps - ref_chosen_logps.detach()) - (policy_rejected_logps - ref_rejected_logps.detach())
    return -F.logsigmoid(z).mean()
'''),
        ("chosen and rejected swapped", '''
def dpo_loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta=0.1):
    if len({tuple(t.shape) for t in (policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps)}) != 1:
        raise ValueError("shapes")
    z = beta * ((policy_rejected_logps - ref_rejected_logps.detach()) - (policy_chosen_logps - ref_chosen_logps.detach()))
    return -F.logsigmoid(z).mean()
'''),
        ("reference log-probs not detached", '''
def dpo_loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta=0.1):
    if len({tuple(t.shape) for t in (policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps)}) != 1:
        raise ValueError("shapes")
    z = beta * ((policy_chosen_logps - ref_chosen_logps) - (policy_rejected_logps - ref_rejected_logps))
    return -F.logsigmoid(z).mean()
'''),
        ("reference ignored", '''
def dpo_loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta=0.1):
    if len({tuple(t.shape) for t in (policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps)}) != 1:
        raise ValueError("shapes")
    return -F.logsigmoid(beta * (policy_chosen_logps - policy_rejected_logps)).mean()
'''),
        ("no shape check (RuntimeError instead of ValueError)", '''
def dpo_loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta=0.1):
    z = beta * ((policy_chosen_logps - ref_chosen_logps.detach()) - (policy_rejected_logps - ref_rejected_logps.detach()))
    return -F.logsigmoid(z).mean()
'''),
    ],
    "simpo_loss": [
        ("margin gamma added", '''
def simpo_loss(policy_chosen_logps, policy_rejected_logps, chosen_lengths, rejected_lengths, beta=2.0, gamma=0.5):
    if len({tuple(t.shape) for t in (policy_chosen_logps, policy_rejected_logps, chosen_lengths, rejected_lengths)}) != 1:
        raise ValueError("shapes")
    z = beta * policy_chosen_logps / chosen_lengths - beta * policy_rejected_logps / rejected_lengths + gamma
    return -F.logsigmoid(z).mean()
'''),
        ("no length normalisation", '''
def simpo_loss(policy_chosen_logps, policy_rejected_logps, chosen_lengths, rejected_lengths, beta=2.0, gamma=0.5):
    if len({tuple(t.shape) for t in (policy_chosen_logps, policy_rejected_logps, chosen_lengths, rejected_lengths)}) != 1:
        raise ValueError("shapes")
    return -F.logsigmoid(beta * (policy_chosen_logps - policy_rejected_logps) - gamma).mean()
'''),
        ("gamma inside the beta bracket", '''
def simpo_loss(policy_chosen_logps, policy_rejected_logps, chosen_lengths, rejected_lengths, beta=2.0, gamma=0.5):
    if len({tuple(t.shape) for t in (policy_chosen_logps, policy_rejected_logps, chosen_lengths, rejected_lengths)}) != 1:
        raise ValueError("shapes")
    z = beta * (policy_chosen_logps / chosen_lengths - policy_rejected_logps / rejected_lengths - gamma)
    return -F.logsigmoid(z).mean()
'''),
        ("sigmoid then log (overflows)", '''
def simpo_loss(policy_chosen_logps, policy_rejected_logps, chosen_lengths, rejected_lengths, beta=2.0, gamma=0.5):
    if len({tuple(t.shape) for t in (policy_chosen_logps, policy_rejected_logps, chosen_lengths, rejected_lengths)}) != 1:
        raise ValueError("shapes")
    z = beta * policy_chosen_logps / chosen_lengths - beta * policy_rejected_logps / rejected_lengths - gamma
    return -torch.log(torch.sigmoid(z)).mean()
'''),
        ("lengths swapped", '''
def simpo_loss(policy_chosen_logps, policy_rejected_logps, chosen_lengths, rejected_lengths, beta=2.0, gamma=0.5):
    if len({tuple(t.shape) for t in (policy_chosen_logps, policy_rejected_logps, chosen_lengths, rejected_lengths)}) != 1:
        raise ValueError("shapes")
    z = beta * policy_chosen_logps / rejected_lengths - beta * policy_rejected_logps / chosen_lengths - gamma
    return -F.logsigmoid(z).mean()
'''),
    ],
}
