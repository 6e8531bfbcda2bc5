# %% sft_loss
def sft_loss(token_logps, mask):
    print('shapes', token_logps.shape, mask.shape)
    m = mask.to(token_logps.dtype)
    loss = -(token_logps * m).sum() / m.sum()
    print('loss', loss)
    return loss
