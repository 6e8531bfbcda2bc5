"""Plausible wrong answers to the exercises of 07_agents; each must fail at least one test of its exercise.

WRONG = {function_name: [(description, source of a wrong definition), ...]}
"""

WRONG = {
    "action_mask": [
        ("the environment's tokens kept, the policy's dropped (env_mask used as the mask)", '''
def action_mask(completion_mask, env_mask):
    if completion_mask.shape != env_mask.shape:
        raise ValueError("shapes")
    return completion_mask.float() * env_mask.float()
'''),
        ("padding kept (1 - env_mask alone)", '''
def action_mask(completion_mask, env_mask):
    if completion_mask.shape != env_mask.shape:
        raise ValueError("shapes")
    return 1.0 - env_mask.float()
'''),
        ("a difference instead of a product (-1 where env_mask marks padding)", '''
def action_mask(completion_mask, env_mask):
    if completion_mask.shape != env_mask.shape:
        raise ValueError("shapes")
    return completion_mask.float() - env_mask.float()
'''),
        ("no shape check (broadcasting hides a mistake)", '''
def action_mask(completion_mask, env_mask):
    return completion_mask.float() * (1 - env_mask.float())
'''),
        ("a bool mask returned", '''
def action_mask(completion_mask, env_mask):
    if completion_mask.shape != env_mask.shape:
        raise ValueError("shapes")
    return completion_mask.bool() & ~env_mask.bool()
'''),
        ("the completion mask returned unchanged (environment tokens left in the loss)", '''
def action_mask(completion_mask, env_mask):
    if completion_mask.shape != env_mask.shape:
        raise ValueError("shapes")
    return completion_mask.float()
'''),
    ],
    "abstain_reward": [
        ("the abstain phrase anywhere in the completion, not only on its last line", '''
def abstain_reward(completion, answer, wrong_penalty=1.0):
    import re
    if "I don't know" in completion:
        return 0.0
    numbers = re.findall(r"-?\\d+", completion)
    return 1.0 if numbers and int(numbers[-1]) == int(answer) else -float(wrong_penalty)
'''),
        ("correctness checked before abstention", '''
def abstain_reward(completion, answer, wrong_penalty=1.0):
    import re
    numbers = re.findall(r"-?\\d+", completion)
    if numbers and int(numbers[-1]) == int(answer):
        return 1.0
    lines = completion.strip().splitlines()
    if lines and "I don't know" in lines[-1]:
        return 0.0
    return -float(wrong_penalty)
'''),
        ("no integer treated as an abstention (0.0)", '''
def abstain_reward(completion, answer, wrong_penalty=1.0):
    import re
    lines = completion.strip().splitlines()
    if lines and "I don't know" in lines[-1]:
        return 0.0
    numbers = re.findall(r"-?\\d+", completion)
    if not numbers:
        return 0.0
    return 1.0 if int(numbers[-1]) == int(answer) else -float(wrong_penalty)
'''),
        ("the penalty ignored (always -1)", '''
def abstain_reward(completion, answer, wrong_penalty=1.0):
    import re
    lines = completion.strip().splitlines()
    if lines and "I don't know" in lines[-1]:
        return 0.0
    numbers = re.findall(r"-?\\d+", completion)
    return 1.0 if numbers and int(numbers[-1]) == int(answer) else -1.0
'''),
        ("the first integer taken as the answer", '''
def abstain_reward(completion, answer, wrong_penalty=1.0):
    import re
    lines = completion.strip().splitlines()
    if lines and "I don't know" in lines[-1]:
        return 0.0
    numbers = re.findall(r"-?\\d+", completion)
    return 1.0 if numbers and int(numbers[0]) == int(answer) else -float(wrong_penalty)
'''),
        ("the penalty's sign dropped (+w for a wrong answer)", '''
def abstain_reward(completion, answer, wrong_penalty=1.0):
    import re
    lines = completion.strip().splitlines()
    if lines and "I don't know" in lines[-1]:
        return 0.0
    numbers = re.findall(r"-?\\d+", completion)
    return 1.0 if numbers and int(numbers[-1]) == int(answer) else wrong_penalty
'''),
    ],
    "abstain_threshold": [
        ("1 / (1 + w)", '''
def abstain_threshold(wrong_penalty):
    if wrong_penalty < 0:
        raise ValueError("negative")
    return 1.0 / (1.0 + wrong_penalty)
'''),
        ("no ValueError for a negative penalty", '''
def abstain_threshold(wrong_penalty):
    return float(wrong_penalty / (1 + wrong_penalty))
'''),
        ("w / (2 + w)", '''
def abstain_threshold(wrong_penalty):
    if wrong_penalty < 0:
        raise ValueError("negative")
    return float(wrong_penalty / (2 + wrong_penalty))
'''),
        ("integer division", '''
def abstain_threshold(wrong_penalty):
    if wrong_penalty < 0:
        raise ValueError("negative")
    return float(wrong_penalty // (1 + wrong_penalty))
'''),
        ("only the penalty of 1 handled right (always 1/2)", '''
def abstain_threshold(wrong_penalty):
    if wrong_penalty < 0:
        raise ValueError("negative")
    return 0.5
'''),
    ],
}
