"""Routes: referrals from other systems (POST, and the referrer's read-back)."""
from __future__ import annotations

from flask import current_app, request, url_for
from flask.views import MethodView

from engine.referrals import intake as referrals
from schemas.common import MAX_ID, parse_since
from schemas.referrals import (
    BATCH_ROW_STATUSES,
    EXAMPLE,
    IdempotencyHeaders,
    Referral,
    ReferralBatchAnswer,
    ReferralCreated,
    ReferralIn,
    ReferralPage,
    ReferralQuery,
)
from web import db
from web.api.core import (
    BODY_LIMIT,
    REFERRAL_BODY_LIMIT,
    ApiBlueprint,
    ApiProblem,
    caller,
    created,
    created_headers,
    next_page,
    problems,
    requires,
)
from web.referral_files import FileRefused, import_rows, read_rows

blp = ApiBlueprint("Referrals", __name__, description="紹介（他のシステムからのリファー）と、その状況の読み戻し")


def _location(case_id: int) -> str:
    return url_for("Referrals.ReferralById", referral_id=case_id, _external=True)


@blp.route("/referrals")
class Referrals(MethodView):
    @requires("referrals:write", max_body=REFERRAL_BODY_LIMIT, body="required")
    @blp.arguments(IdempotencyHeaders, location="headers", error_status_code=400)
    @blp.arguments(ReferralIn, example=EXAMPLE)
    @blp.response(201, ReferralCreated, description="受け付けた（ケースを開いた）",
                  headers=created_headers("紹介の URL（/api/v1/referrals/{id}）"))
    @problems(400, 409, 413, 415, 422, 500, 503)
    def post(self, headers, payload):
        """紹介を送る（ケースを開き、振り分け、ルールが一致すればつなぐシートを送付）

        Idempotency-Key ヘッダーが必要です。同じキー・同じ本文の再送には最初の応答が返ります。
        応答の `id` はケースの ID で、/referrals/{id}（紹介元の見え方）と /cases/{id}（職員の見え方）に共通です。
        `routing.reason` は振り分けの理由です。
        """
        who = caller()
        db.write_turn()
        answer = referrals.receive(db.session(), who.client, key=headers["idempotency_key"], payload=payload,
                                   actor=who.user, location=_location, remote_addr=request.remote_addr)
        return created(answer, _location(answer.case_id))

    @requires("referrals:read")
    @blp.arguments(ReferralQuery, location="query")
    @blp.response(200, ReferralPage, description="紹介の一覧の1ページ")
    @problems(422, 500, 503)
    def get(self, query):
        """自分が送った紹介の一覧（新しい順）

        絞り込み: `status`（状態コード）、`updated_since`（タイムゾーン付き ISO 8601）。続きは `next` をたどります。
        """
        since = parse_since(query["updated_since"]) if query.get("updated_since") else None
        items, more = referrals.page(db.session(), caller().client, status=query.get("status"), updated_since=since,
                                     before_id=query.get("cursor"), limit=query["limit"])
        return {"items": items, "next": next_page("Referrals.Referrals", query, more, ("status", "updated_since"))}


@blp.route(f"/referrals/<int(max={MAX_ID}):referral_id>")
class ReferralById(MethodView):
    @requires("referrals:read")
    @blp.response(200, Referral, description="紹介の今の状況")
    @problems(404, 500, 503)
    def get(self, referral_id):
        """自分が送った紹介の状況（状態・担当部署・受理と終結の日時・終結理由。ケースの記録は含まない）"""
        return referrals.get(db.session(), caller().client, referral_id)


MAX_BATCH_ROWS = 500
BATCH_EXAMPLE = (
    "external_ref,referrer.organization,person.name,person.name_kana,person.birth_date,person.area,categories,summary\n"
    "HOUKATSU-OONO-2026-0042,大野地域包括支援センター,廿日 太郎,ハツカ タロウ,昭和21年5月1日,大野,"
    "elder_care hikikomori,母の介護サービス導入時に長男の長期ひきこもりを把握。\n"
)


@blp.route("/referral-batches")
class ReferralBatches(MethodView):
    @requires("referrals:write", max_body=BODY_LIMIT)
    @blp.doc(requestBody={"required": True, "content": {"text/csv": {
        "schema": {"type": "string", "minLength": 1,
                   "description": "見出しの行と、1行に1件の紹介（UTF-8、BOM 可、または Shift_JIS/CP932）"},
        "example": BATCH_EXAMPLE}}})
    @blp.response(200, ReferralBatchAnswer, description="行ごとの結果（受け付けなかった行があっても 200）")
    @problems(413, 415, 422, 500, 503)
    def post(self):
        """紹介をまとめて送る（CSV。1行ごとに POST /referrals と同じく受け付け、行ごとの結果を返す）

        列は `tsunagu referrals import` と同じです（運用の手引き docs/api.md）。各行は自分の
        `external_ref` で1回だけ受け付けられ、同じ行を送り直すと取り込み済み（replayed）になるので、
        Idempotency-Key は要りません。1回に送れるのは500行・1 MiB までです。ファイルとして読めない
        （文字コード・見出し・長すぎる行）ときは何も取り込まず 422 を返します。
        """
        if request.mimetype != "text/csv":
            raise ApiProblem("unsupported-media-type", "本文は CSV（Content-Type: text/csv）で送ってください。")
        try:
            rows = read_rows(request.get_data())
        except FileRefused as exc:
            raise ApiProblem("validation-error", str(exc), errors={"file": [str(exc)]}) from None
        if len(rows) > MAX_BATCH_ROWS:
            raise ApiProblem("payload-too-large",
                             f"1回に送れるのは{MAX_BATCH_ROWS}行までです（{len(rows)}行あります）。分けて送ってください。")
        who = caller()
        client_id = who.client.id
        # The request's own work (the token's use) is saved first: each row is a transaction of its own. The
        # worker's write turn (db.write_turn) is not taken: held for a whole batch, it would keep the worker's
        # other referrals waiting for seconds; each row still waits for the database's one writer on its own.
        db.commit()
        counts = dict.fromkeys(BATCH_ROW_STATUSES, 0)
        answers = []
        for outcome in import_rows(current_app.extensions["tsunagu.sessions"], client_id, rows, actor=who.user,
                                   remote_addr=request.remote_addr, location=_location):
            counts[outcome.status] += 1
            answers.append({"line": outcome.line, "status": outcome.status, "referral": outcome.body,
                            **({"errors": outcome.errors} if outcome.errors else {})})
        return {**counts, "rows": answers}
