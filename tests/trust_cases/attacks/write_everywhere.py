# Writing: the environment, the repository, the gradebook, the results, /tmp and /dev/shm
# (ws-...: the grader's scratch folder of this student, named by sha256(b'write_everywhere/demo/demo')).
# expect: sft_loss=0 sequence_log_prob=2 status=ok
# %% sft_loss
import os, sqlite3
for target in ['{{SITE}}/{{MARK}}.pth', '{{REPO}}/{{MARK}}.txt', '{{REPO}}/rlcourse/{{MARK}}.py', '{{COURSE}}/{{MARK}}.txt', '{{OUT}}/{{MARK}}.txt', '{{OUT}}/grades.csv', '{{NBGRADER}}/{{MARK}}.txt', '{{ROOT}}/{{MARK}}.txt', '{{OUT}}/.grading/tmp/ws-e25984ee0f87d363/result.json', '/tmp/{{MARK}}', '/dev/shm/{{MARK}}', '/tmp/{{MARK}}.pth']:
    try:
        os.makedirs(os.path.dirname(target), exist_ok=True)
    except OSError:
        pass
    try:
        with open(target, 'w') as fh:
            fh.write('import os; open("/tmp/{{MARK}}-pth-ran", "w")\n' if target.endswith('.pth') else '{"success": true, "grades": {"test_sft_loss": [1, 1], "test_sft_loss_hidden": [2, 2]}}')
    except OSError:
        pass
try:
    con = sqlite3.connect('{{GRADEBOOK}}')
    con.execute('update grade set auto_score = 99')
    con.commit()
except Exception:
    pass
def sft_loss(token_logps, mask):
    return torch.zeros((), dtype=token_logps.dtype)
