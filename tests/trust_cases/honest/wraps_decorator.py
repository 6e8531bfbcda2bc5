# %% sft_loss
import functools

def logged(fn):
    @functools.wraps(fn)
    def inner(*args, **kwargs):
        return fn(*args, **kwargs)
    return inner

@logged
def sft_loss(token_logps, mask):
    m = mask.to(token_logps.dtype)
    return -(token_logps * m).sum() / m.sum()
