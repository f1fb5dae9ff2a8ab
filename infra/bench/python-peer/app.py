"""POST /orders written the way a Python team would: boto3 and Powertools for AWS Lambda.

The benchmark's peer of the create-order function (make bench). Same contract, same tables, same
single TransactWriteItems (order, stock decrements with `stock >= :qty`, outbox event, quota count);
Powertools' idempotency (DynamoDB persistence) for the Idempotency-Key header, its logger for JSON logs
and its event handler for routing. It runs under awslambdaric behind the same aws-lambda-rie.
"""

import json
import os
import random
import re
import time
import uuid
from datetime import datetime, timedelta, timezone

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent,
)
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

logger = Logger(service="orders-peer")
app = APIGatewayHttpResolver()
dynamodb = boto3.client("dynamodb")

PRODUCTS_TABLE = os.environ["PRODUCTS_TABLE"]
ORDERS_TABLE = os.environ["ORDERS_TABLE"]
OUTBOX_TABLE = os.environ["OUTBOX_TABLE"]
ORDERS_PER_MINUTE = int(os.environ["ORDERS_PER_MINUTE"])
RESERVATION_MINUTES = int(os.environ.get("RESERVATION_MINUTES", "15"))
EVENT_SOURCE = os.environ["EVENT_SOURCE"]
MAX_BODY = 16 * 1024
PRODUCT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
PROBLEM = "application/problem+json"

persistence = DynamoDBPersistenceLayer(table_name=os.environ["IDEMPOTENCY_TABLE"])
# One record per (user, key); requests without the header are not made idempotent.
idempotency = IdempotencyConfig(
    event_key_jmespath=(
        'headers."idempotency-key" && '
        '[requestContext.authorizer.jwt.claims.sub, headers."idempotency-key"]'
    ),
    payload_validation_jmespath="body",
    raise_on_no_idempotency_key=False,
    expires_after_seconds=24 * 3600,
)


class Line(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    productId: str
    quantity: int = Field(ge=1, le=1000)

    @field_validator("productId")
    @classmethod
    def product_id_shape(cls, value: str) -> str:
        if not PRODUCT_ID.match(value):
            raise ValueError("productId must be 1-64 of A-Z a-z 0-9 _ -")
        return value


class OrderRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    items: list[Line] = Field(min_length=1, max_length=25)
    paymentMethod: str = Field(min_length=1, max_length=255)
    shippingAddress: dict | None = None

    @field_validator("items")
    @classmethod
    def distinct_products(cls, items: list[Line]) -> list[Line]:
        ids = [line.productId for line in items]
        if len(set(ids)) != len(ids):
            raise ValueError("a productId may appear at most once")
        return items


def problem(status: int, slug: str, title: str, detail: str, headers=None, **extra) -> Response:
    body = {
        "type": f"urn:orders:problem:{slug}",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": app.lambda_context.aws_request_id,
        **extra,
    }
    return Response(status, PROBLEM, json.dumps(body), headers=headers or {})


def money(amount: int, currency: str) -> dict:
    return {"amount": amount, "currency": currency}


def to_attr(value):
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int):
        return {"N": str(value)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, list):
        return {"L": [to_attr(v) for v in value]}
    return {"M": {k: to_attr(v) for k, v in value.items()}}


def read_products(ids: list[str], consistent: bool) -> dict:
    keys = [{"productId": {"S": i}} for i in ids]
    found = {}
    request = {PRODUCTS_TABLE: {"Keys": keys, "ConsistentRead": consistent}}
    while request:
        out = dynamodb.batch_get_item(RequestItems=request)
        for item in out["Responses"].get(PRODUCTS_TABLE, []):
            found[item["productId"]["S"]] = item
        request = out.get("UnprocessedKeys") or None
    return found


def place(user: str, request: OrderRequest) -> Response:
    lines = request.items
    ids = [line.productId for line in lines]
    rechecked = False
    for attempt in range(1, 5):
        products = read_products(ids, consistent=rechecked)
        missing = next((i for i in ids if i not in products), None)
        if missing:
            return problem(404, "product-not-found", "Product not found",
                           f"product {missing} does not exist", productId=missing)
        currencies = {products[i]["currency"]["S"] for i in ids}
        if len(currencies) > 1:
            a, b = sorted(currencies)[:2]
            return problem(422, "currency-mismatch", "Currency mismatch",
                           f"the lines of one order must share one currency ({a} and {b} given)")
        currency = currencies.pop()
        now = datetime.now(timezone.utc)
        created_at = now.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        order_id = str(uuid.uuid4())
        items = []
        for line in lines:
            price = int(products[line.productId]["priceAmount"]["N"])
            items.append({
                "productId": line.productId,
                "quantity": line.quantity,
                "unitPrice": money(price, currency),
                "lineTotal": money(price * line.quantity, currency),
            })
        deadline = (now + timedelta(minutes=RESERVATION_MINUTES)).isoformat(
            timespec="milliseconds").replace("+00:00", "Z")
        order = {
            "orderId": order_id,
            "userId": user,
            "status": "PENDING",
            "items": items,
            "total": money(sum(i["lineTotal"]["amount"] for i in items), currency),
            "createdAt": created_at,
            "paymentMethod": request.paymentMethod,
            "expiresAt": deadline,
            "payment": {"status": "pending"},
        }
        if request.shippingAddress is not None:
            order["shippingAddress"] = request.shippingAddress
        event = {
            "specversion": "1.0",
            "id": str(uuid.uuid5(uuid.UUID(order_id), "order.created")),
            "type": "order.created",
            "source": EVENT_SOURCE,
            "subject": order_id,
            "time": created_at,
            "datacontenttype": "application/json",
            "data": order,
            "expiresAt": int((now + timedelta(days=7)).timestamp()),
        }
        # The outbox's hash key, as the Rust functions write it: the event's hour and its shard.
        event["bucket"] = f"{created_at[:13]}#{sum(event['id'].encode()) % 8}"
        # Stored as the Rust function stores it: the deadline under reserveUntil (expiresAt is
        # the table's TTL attribute), in the sparse expiry index while PENDING.
        stored = {k: v for k, v in order.items() if k != "expiresAt"}
        stored["reserveUntil"] = deadline
        stored["expiryHour"] = deadline[:13]
        actions = [{"Put": {
            "TableName": ORDERS_TABLE,
            "Item": to_attr(stored)["M"],
            "ConditionExpression": "attribute_not_exists(orderId)",
        }}]
        for item in items:
            actions.append({"Update": {
                "TableName": PRODUCTS_TABLE,
                "Key": {"productId": {"S": item["productId"]}},
                "UpdateExpression": "SET stock = stock - :qty",
                "ConditionExpression": "attribute_exists(productId) AND stock >= :qty "
                                       "AND priceAmount = :price AND currency = :currency",
                "ExpressionAttributeValues": {
                    ":qty": {"N": str(item["quantity"])},
                    ":price": {"N": str(item["unitPrice"]["amount"])},
                    ":currency": {"S": currency},
                },
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }})
        actions.append({"Put": {
            "TableName": OUTBOX_TABLE,
            "Item": to_attr(event)["M"],
            "ConditionExpression": "attribute_not_exists(id)",
        }})
        minute = now.strftime("%Y%m%dT%H%M")
        actions.append({"Update": {
            "TableName": ORDERS_TABLE,
            "Key": {"orderId": {"S": f"quota#{minute}#{user}"}},
            "UpdateExpression": "SET orderCount = if_not_exists(orderCount, :zero) + :one, "
                                "expiresAt = :expires",
            "ConditionExpression": "attribute_not_exists(orderCount) OR orderCount < :limit",
            "ExpressionAttributeValues": {
                ":zero": {"N": "0"}, ":one": {"N": "1"},
                ":limit": {"N": str(ORDERS_PER_MINUTE)},
                ":expires": {"N": str(int((now + timedelta(minutes=10)).timestamp()))},
            },
        }})
        try:
            dynamodb.transact_write_items(TransactItems=actions)
        except ClientError as error:
            if error.response["Error"]["Code"] != "TransactionCanceledException":
                raise
            reasons = error.response.get("CancellationReasons", [])
            outcome = explain(reasons, items, rechecked)
            if outcome == "price-changed":
                rechecked = True
                continue
            if outcome == "retry":
                time.sleep(random.uniform(0, min(0.4, 0.025 * 2 ** attempt)))
                continue
            return outcome
        logger.info("order created", extra={"order_id": order_id})
        return Response(201, "application/json", json.dumps(order),
                        headers={"Location": f"/orders/{order_id}"})
    return problem(503, "service-unavailable", "Service unavailable",
                   "the service is busy; retry after the time given", headers={"Retry-After": "1"})


def explain(reasons: list, items: list, rechecked: bool):
    """Maps the cancellation reasons, by position (order, lines, outbox, quota), to the answer."""
    for index, item in enumerate(items, start=1):
        reason = reasons[index] if index < len(reasons) else {}
        if reason.get("Code") != "ConditionalCheckFailed":
            continue
        old = reason.get("Item")
        if not old:
            return problem(404, "product-not-found", "Product not found",
                           f"product {item['productId']} does not exist",
                           productId=item["productId"])
        available = int(old["stock"]["N"])
        if available < item["quantity"]:
            return problem(409, "insufficient-stock", "Insufficient stock",
                           f"product {item['productId']} has {available} left, "
                           f"{item['quantity']} requested",
                           productId=item["productId"], requested=item["quantity"],
                           available=max(available, 0))
        if rechecked:
            return problem(409, "price-changed", "Price changed",
                           f"the price of product {item['productId']} changed while the order "
                           "was placed; retry", productId=item["productId"])
        return "price-changed"
    if reasons and reasons[-1].get("Code") == "ConditionalCheckFailed":
        retry_after = 60 - datetime.now(timezone.utc).second
        return problem(429, "quota-exceeded", "Too many orders",
                       f"at most {ORDERS_PER_MINUTE} orders a minute",
                       headers={"Retry-After": str(retry_after)}, limit=ORDERS_PER_MINUTE)
    return "retry"


@app.post("/orders")
def create_order() -> Response:
    event = app.current_event
    claims = (event.request_context.authorizer.jwt_claim or {}) if event.request_context.authorizer else {}
    user = claims.get("sub")
    if not user:
        return problem(401, "unauthorized", "Unauthorized", "a valid bearer token is required",
                       headers={"WWW-Authenticate": "Bearer"})
    scopes = set(event.request_context.authorizer.jwt_scopes or []) | set(
        str(claims.get("scope", "")).split())
    if "orders:write" not in scopes:
        return problem(403, "insufficient-scope", "Insufficient scope",
                       "the token lacks the scope orders:write", requiredScope="orders:write")
    content_type = (event.headers.get("content-type") or "").split(";")[0].strip().lower()
    if content_type != "application/json":
        return problem(415, "unsupported-media-type", "Unsupported media type",
                       "the body must be sent as Content-Type: application/json",
                       headers={"Accept": "application/json"})
    body = event.decoded_body or ""
    if len(body.encode()) > MAX_BODY:
        return problem(413, "payload-too-large", "Payload too large",
                       f"the body may be at most {MAX_BODY} bytes", maxBytes=MAX_BODY)
    try:
        payload = json.loads(body)
    except ValueError as error:
        return problem(400, "malformed-json", "Malformed JSON", str(error))
    if isinstance(payload, dict) and "items" not in payload:
        checkout = {k: payload.pop(k) for k in ("paymentMethod", "shippingAddress") if k in payload}
        payload = {"items": [payload], **checkout}
    try:
        request = OrderRequest.model_validate(payload)
    except ValidationError as error:
        errors = [{"pointer": "/" + "/".join(str(p) for p in e["loc"]), "detail": e["msg"]}
                  for e in error.errors()]
        return problem(400, "validation-failed", "Validation failed", errors[0]["detail"],
                       errors=errors)
    return place(user, request)


@logger.inject_lambda_context
@idempotent(config=idempotency, persistence_store=persistence)
def handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
