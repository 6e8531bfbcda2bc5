# %% sft_loss
def sft_loss(token_logps, mask):
    return -masked_mean(token_logps, mask)

# %% added at end
def masked_mean(x, m):
    m = m.to(x.dtype)
    return (x * m).sum() / m.sum()
