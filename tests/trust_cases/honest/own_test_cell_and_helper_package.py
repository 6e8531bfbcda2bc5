# %% sequence_log_prob
from rlcourse.checks import check_shape

def sequence_log_prob(token_logps, mask):
    out = (token_logps * mask.to(token_logps.dtype)).sum(-1)
    check_shape(out, token_logps.shape[:1], 'sequence_log_prob')
    return out

# %% added at end
out = sequence_log_prob(torch.tensor([[-1.0, -2.0]]), torch.ones(1, 2))
assert torch.allclose(out, torch.tensor([-3.0])), out
out
