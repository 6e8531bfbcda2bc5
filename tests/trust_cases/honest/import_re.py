# %% sft_loss
import re

def sft_loss(token_logps, mask):
    if not re.fullmatch(r'torch\.\w+', str(token_logps.dtype)):
        raise TypeError('unexpected dtype')
    m = mask.to(token_logps.dtype)
    return -(token_logps * m).sum() / m.sum()
