"""Routes: 見守り通報 from 見守り協定 partners (POST, and the read-back that it was received)."""
from __future__ import annotations

from flask import request, url_for
from flask.views import MethodView

from engine.referrals import watch
from schemas.common import MAX_ID
from schemas.referrals import IdempotencyHeaders
from schemas.watch import EXAMPLE, WatchReportIn, WatchReportReceived
from web import db
from web.api.core import REFERRAL_BODY_LIMIT, ApiBlueprint, caller, created, created_headers, problems, requires

blp = ApiBlueprint("WatchReports", __name__,
                   description="見守り通報（見守り協定の事業者が見た、困っていそうな人のこと）と、受け付けたことの読み戻し")


def _location(case_id: int) -> str:
    return url_for("WatchReports.WatchReportById", report_id=case_id, _external=True)


@blp.route("/watch-reports")
class WatchReports(MethodView):
    @requires("watch:write", max_body=REFERRAL_BODY_LIMIT, body="required")
    @blp.arguments(IdempotencyHeaders, location="headers", error_status_code=400)
    @blp.arguments(WatchReportIn, example=EXAMPLE)
    @blp.response(201, WatchReportReceived, description="受け付けた（サポートデスクにケースを開いた）",
                  headers=created_headers("通報の URL（/api/v1/watch-reports/{id}）"))
    @problems(400, 409, 413, 415, 422, 500, 503)
    def post(self, headers, payload):
        """見守り通報を送る（誰のことか・どこか・見たこと・見た日時）

        相談まるごとサポートデスクに届き、職員が様子を確かめます。分類や担当部署は指定しません。
        Idempotency-Key ヘッダーが必要です。同じキー・同じ本文の再送には最初の応答が返ります。
        """
        who = caller()
        db.write_turn()
        answer = watch.receive(db.session(), who.client, key=headers["idempotency_key"], payload=payload,
                               location=_location, remote_addr=request.remote_addr)
        return created(answer, _location(answer.case_id))


@blp.route(f"/watch-reports/<int(max={MAX_ID}):report_id>")
class WatchReportById(MethodView):
    @requires("watch:read")
    @blp.response(200, WatchReportReceived, description="受け付けたこと")
    @problems(404, 500, 503)
    def get(self, report_id):
        """自分が送った見守り通報を受け付けたかどうか（その後のことは含まない）"""
        return watch.get(db.session(), caller().client, report_id)
