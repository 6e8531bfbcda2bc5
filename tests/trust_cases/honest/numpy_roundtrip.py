# %% sequence_log_prob
import numpy as np

def sequence_log_prob(token_logps, mask):
    m = torch.from_numpy(np.asarray(mask.numpy(), dtype=np.float64)).to(token_logps.dtype)
    return (token_logps * m).sum(-1)
