"""Tsunagu's domain core: the case and the rooms around it. Imports no web framework.

Floors, each leaning only on the floors below it (no room imports one above it, nor one beside it that
imports it back):

1. ground floor: models, dbtypes, db, migrate, settings, calendar, errors, vocab (the code lists of
   config/), departments (looked up by code, installed from departments.yaml with their commissions),
   fields (field declarations), case_departments (who knows of which case), spreadsheet, backup;
2. who may do what, and the trail: access/ (actors, relations, the policy, the policy in SQL), audit/ (the
   hash-chained trail every write appends to, and the refusals it records);
3. what may leave the city, and the machines: sharing/ (the basis every share with a body outside the city
   needs, and the 提供記録 of each provision), states (the case and handoff machines and their guards),
   privacy/ (開示請求 answers and retention, which read the trail and the provisions);
4. people/: one record per person across windows and years (names folded for search and matching, 名寄せ
   and its candidates, merges and their undoing) and households, with the cases of their members;
5. the rules: rules/ (the routing rules file, its installed versions, the stall policy) and routing (what
   they propose for a consultation);
6. alerts/: alerts raised and resolved, the stall scan, notices to departments;
7. the case: cases/ — its kernel (loading, history, version, numbering, checks), intake, the events of its
   machine (cases/events/, one module per stage) and the records and reads around it;
8. the rooms that use the case: worklists/ (a department's inbox, the FM dashboard), referrals/ (other
   systems: referrals, clients and tokens, webhooks), reports/ (年度集計), users/ (staff accounts and
   sign-in), and demo (the Hatsukaichi demo set) on top.

A use case is one function: it takes a session, the acting user and plain values, checks who is asking and
the state of things, changes rows, appends history and audit, and flushes. It never commits: the request or
the command that called it does, once.
"""
