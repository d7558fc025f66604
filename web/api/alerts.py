"""Routes: alerts the token's staff user may see, acknowledging and resolving them."""
from __future__ import annotations

from flask.views import MethodView

from engine.alerts import alerts
from engine.alerts import listing as alert_views
from schemas.alerts import AcknowledgeIn, AlertOut, AlertPage, AlertQuery, ResolveIn
from schemas.common import MAX_ID
from web import db
from web.api.core import ApiBlueprint, caller, next_page, problems, requires

blp = ApiBlueprint("Alerts", __name__, description="アラート（止まった引き継ぎ、担当未決定、評価期限超過など）")


@blp.route("/alerts")
class Alerts(MethodView):
    @requires("alerts:read")
    @blp.arguments(AlertQuery, location="query")
    @blp.response(200, AlertPage, description="アラートの一覧の1ページ")
    @problems(422, 500, 503)
    def get(self, query):
        """アラートの一覧（新しい順。トークンの職員が見てよいものだけ）

        絞り込み: `status`（open | acknowledged | resolved）、`kind`。続きは `next` をたどります。
        """
        items, more = alert_views.page(db.session(), caller().user, status=query.get("status"),
                                       kind=query.get("kind"), before_id=query.get("cursor"), limit=query["limit"])
        return {"items": items, "next": next_page("Alerts.Alerts", query, more, ("status", "kind"))}


@blp.route(f"/alerts/<int(max={MAX_ID}):alert_id>/acknowledge")
class AlertAcknowledge(MethodView):
    @requires("alerts:write", body="optional")
    @blp.arguments(AcknowledgeIn, required=False)
    @blp.response(200, AlertOut, description="確認済みにしたアラート")
    @problems(400, 404, 409, 413, 415, 422, 500, 503)
    def post(self, body, alert_id):
        """アラートを確認済みにする（本文は省略可。note を付けられる）"""
        alert = alerts.acknowledge(db.session(), caller().user, alert_id, note=body.get("note"))
        return alert_views.answer(db.session(), caller().user, alert)


@blp.route(f"/alerts/<int(max={MAX_ID}):alert_id>/resolve")
class AlertResolve(MethodView):
    @requires("alerts:write", body="required")
    @blp.arguments(ResolveIn)
    @blp.response(200, AlertOut, description="解決済みにしたアラート")
    @problems(400, 404, 409, 413, 415, 422, 500, 503)
    def post(self, body, alert_id):
        """アラートを解決済みにする（どう解決したかの note が必要）"""
        alert = alerts.resolve(db.session(), caller().user, alert_id, note=body["note"])
        return alert_views.answer(db.session(), caller().user, alert)
