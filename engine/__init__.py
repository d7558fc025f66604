"""Tsunagu's domain core: the case and the rooms around it. Imports no web framework.

Floors, each leaning only on the floors below it (no room imports one above it, nor one beside it that
imports it back):

1. ground floor: models, dbtypes, db, migrate, settings, calendar, errors, vocab (the code lists of
   config/), departments, fields (field declarations), case_departments (who knows of which case),
   spreadsheet, backup, people/ (names as they are searched and matched);
2. who may do what, and the trail: access/ (actors, relations, the policy, the policy in SQL), states (the
   case and handoff machines and their guards), audit/ (the hash-chained trail every write appends to;
   開示請求, retention and refusals, which read it);
3. the rules: rules/ (the routing rules file, its installed versions, the stall policy) and routing (what
   they propose for a consultation);
4. alerts/: alerts raised and resolved, the stall scan, notices to departments;
5. the case: cases/ — its kernel (loading, history, version, numbering, checks), intake, the events of its
   machine (cases/events/, one module per stage) and the records and reads around it;
6. the rooms that use the case: worklists/ (a department's inbox, the FM dashboard), referrals/ (other
   systems: referrals, clients and tokens, webhooks), reports/ (年度集計), users/ (staff accounts and
   sign-in), and demo (the Hatsukaichi demo set) on top.

A use case is one function: it takes a session, the acting user and plain values, checks who is asking and
the state of things, changes rows, appends history and audit, and flushes. It never commits: the request or
the command that called it does, once.
"""
