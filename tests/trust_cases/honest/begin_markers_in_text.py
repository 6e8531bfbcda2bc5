# %% sft_loss
def sft_loss(token_logps, mask):
    """Masked mean NLL.

    Notes copied from the course: ### BEGIN HIDDEN TESTS / ### END HIDDEN TESTS mark the
    hidden part of a test cell.
    """
    ### BEGIN SOLUTION
    m = mask.to(token_logps.dtype)
    return -(token_logps * m).sum() / m.sum()
    ### END SOLUTION
