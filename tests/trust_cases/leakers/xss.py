# HTML in a comment, a string, an exception message and an exception class name.
# expect: sft_loss=3 sequence_log_prob=0 status=ok
# %% sft_loss
# <script>alert(1)</script>
NOTE = '<script>alert(2)</script>'
def sft_loss(token_logps, mask):
    m = mask.to(token_logps.dtype)
    return -(token_logps * m).sum() / m.sum()

# %% sequence_log_prob
def sequence_log_prob(token_logps, mask):
    raise type('<img src=x onerror=alert(3)>', (Exception,), {})('<script>alert(4)</script>')
