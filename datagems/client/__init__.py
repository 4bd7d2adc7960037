"""The terminal client of a DataGems replica: ``datagems generate`` and ``datagems jobs``.

``api.ApiClient`` speaks the HTTP API (session token as ``Authorization: Bearer``);
``progress`` and ``follow`` show a running job; ``session`` resolves credentials.

Exit codes scripts can rely on:

=====  ==============================================================
0      done, every record ok
1      the job finished with some records failed
2      the job failed (no record ok) or was cancelled, or was not started
3      usage or authentication error (bad arguments, bad token: 401)
4      the server is unreachable or failing (network error, 5xx)
130    interrupted with Ctrl-C
=====  ==============================================================
"""
