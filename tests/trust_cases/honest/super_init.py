# %% sft_loss
class _Masked:
    def __init__(self, values, mask):
        self.values, self.mask = values, mask.to(values.dtype)

class _MaskedMean(_Masked):
    def __init__(self, values, mask):
        super().__init__(values, mask)

    def value(self):
        return (self.values * self.mask).sum() / self.mask.sum()

def sft_loss(token_logps, mask):
    return -_MaskedMean(token_logps, mask).value()
