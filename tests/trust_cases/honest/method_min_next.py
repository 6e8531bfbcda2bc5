# %% sequence_log_prob
class Rows:
    def __init__(self, lp, mask):
        self.lp, self.mask, self.i = lp, mask.to(lp.dtype), 0

    def next(self):
        row = (self.lp[self.i] * self.mask[self.i]).sum()
        self.i += 1
        return row

    def min(self):
        return self.lp.min()

def sequence_log_prob(token_logps, mask):
    rows = Rows(token_logps, mask)
    assert rows.min() <= 0, 'log-probabilities are never positive'
    return torch.stack([rows.next() for _ in range(token_logps.shape[0])])
