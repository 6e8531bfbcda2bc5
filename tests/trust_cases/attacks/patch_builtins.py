# Builtins that the student's own server needs too: whatever breaks is the student's own process.
# expect: sft_loss=0 sequence_log_prob=any status=any
# %% sft_loss
import builtins
def sft_loss(token_logps, mask):
    return torch.zeros((), dtype=token_logps.dtype)
builtins.isinstance = lambda *a: True
builtins.float = lambda *a: 1.5
