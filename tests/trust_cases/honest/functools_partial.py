# %% sft_loss
import functools

def _masked_mean(token_logps, mask, sign=1.0):
    m = mask.to(token_logps.dtype)
    return sign * (token_logps * m).sum() / m.sum()

sft_loss = functools.partial(_masked_mean, sign=-1.0)
