# %% sft_loss
def make_loss(*, sign=-1.0):
    def loss(token_logps, mask):
        m = mask.to(token_logps.dtype)
        return sign * (token_logps * m).sum() / m.sum()
    return loss

sft_loss = make_loss()
