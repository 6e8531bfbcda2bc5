# %% sft_loss
def sft_loss(token_logps, mask):
    m = mask.to(token_logps.dtype)
    return -(token_logps * m).sum() / m.sum()

if __name__ == '__main__':
    assert abs(float(sft_loss(torch.tensor([[-1.0, -3.0]]), torch.tensor([[1.0, 1.0]]))) - 2.0) < 1e-6
