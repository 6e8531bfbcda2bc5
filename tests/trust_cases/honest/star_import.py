# %% sequence_log_prob
from torch import *

def sequence_log_prob(token_logps, mask):
    return where(mask.bool(), token_logps, zeros_like(token_logps)).sum(-1)
