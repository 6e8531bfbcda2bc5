# %% sft_loss
class SFTLoss:
    def __call__(self, token_logps, mask):
        m = mask.to(token_logps.dtype)
        return -(token_logps * m).sum() / m.sum()

sft_loss = SFTLoss()
