# %% sft_loss
DEBUG_CALLS = 0

def sft_loss(token_logps, mask):
    global DEBUG_CALLS
    DEBUG_CALLS += 1
    m = mask.to(token_logps.dtype)
    return -(token_logps * m).sum() / m.sum()
