"""Routes: referrals from other systems (POST, and the referrer's read-back)."""
from __future__ import annotations

from flask import request, url_for
from flask.views import MethodView

from engine.referrals import intake as referrals
from schemas.common import MAX_ID, parse_since
from schemas.referrals import (
    EXAMPLE,
    IdempotencyHeaders,
    Referral,
    ReferralCreated,
    ReferralIn,
    ReferralPage,
    ReferralQuery,
)
from web import db
from web.api.core import (
    REFERRAL_BODY_LIMIT,
    ApiBlueprint,
    caller,
    created,
    created_headers,
    next_page,
    problems,
    requires,
)

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
