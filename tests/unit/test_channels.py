"""Channel webhooks: signatures, and Shopify / WooCommerce orders as canonical orders.

The sample payloads follow the channels' real webhook bodies (Shopify
`orders/create`, WooCommerce `order.created` = WC REST v3 order), trimmed
only of fields the transform does not read. Every expected price is worked
out by hand in the test so that the arithmetic can be checked by reading it.
"""

from __future__ import annotations

import base64
import copy
import hmac
import json
from decimal import Decimal
from typing import Any

import pytest

import connectors.shopify.intake
import connectors.woocommerce.intake
from connectors.intake import ChannelPayloadError
from connectors.shopify.intake import order as shopify_order
from connectors.shopify.intake import sign as sign_shopify
from connectors.shopify.intake import verify as verify_shopify
from connectors.woocommerce.intake import order as woocommerce_order
from connectors.woocommerce.intake import sign as sign_woocommerce
from connectors.woocommerce.intake import verify as verify_woocommerce
from hub.schemas import ADDRESS_FIELDS, load_order

# --------------------------------------------------------------------------
# Sample payloads
# --------------------------------------------------------------------------

ZA_BILLING = {
    "first_name": "Thandi",
    "address1": "14 Bree Street",
    "phone": "+27 21 555 0199",
    "city": "Cape Town",
    "zip": "8001",
    "province": "Western Cape",
    "country": "South Africa",
    "last_name": "Nkosi",
    "address2": "Unit 3",
    "company": "Nkosi Outdoor",
    "latitude": -33.9205,
    "longitude": 18.4201,
    "name": "Thandi Nkosi",
    "country_code": "ZA",
    "province_code": "WC",
}


def shopify_inclusive() -> dict[str, Any]:
    """A South African shop: prices include 15% VAT, a code takes 10% off the shoes.

    Shoes: 2 x 115.00 incl = 230.00, less 23.00 discount = 207.00 paid.
    VAT on what was paid: 207.00 * 15 / 115 = 27.00.
    Socks: 3 x 49.99 incl = 149.97; VAT 149.97 * 15 / 115 = 19.5613 -> 19.56.
    Shipping: 115.00 incl, VAT 15.00.
    """
    return {
        "id": 5551234567890,
        "admin_graphql_api_id": "gid://shopify/Order/5551234567890",
        "name": "#1001",
        "order_number": 1001,
        "number": 1,
        "email": "thandi@example.co.za",
        "contact_email": "thandi@example.co.za",
        "created_at": "2024-05-01T09:30:00+02:00",
        "updated_at": "2024-05-01T09:30:02+02:00",
        "currency": "ZAR",
        "presentment_currency": "ZAR",
        "financial_status": "paid",
        "fulfillment_status": None,
        "taxes_included": True,
        "note": "Leave at reception",
        "note_attributes": [],
        "subtotal_price": "356.97",
        "total_discounts": "23.00",
        "total_line_items_price": "379.97",
        "total_price": "471.97",
        "total_tax": "61.56",
        "discount_codes": [{"code": "WINTER10", "amount": "23.00", "type": "percentage"}],
        "discount_applications": [
            {
                "target_type": "line_item",
                "type": "discount_code",
                "value": "10.0",
                "value_type": "percentage",
                "allocation_method": "across",
                "target_selection": "entitled",
                "code": "WINTER10",
            }
        ],
        "customer": {
            "id": 7001234567,
            "email": "thandi@example.co.za",
            "first_name": "Thandi",
            "last_name": "Nkosi",
            "phone": None,
            "tags": "",
            "currency": "ZAR",
        },
        "billing_address": dict(ZA_BILLING),
        "shipping_address": dict(ZA_BILLING, company=None, address2=None),
        "line_items": [
            {
                "id": 13001,
                "variant_id": 44001,
                "product_id": 88001,
                "title": "Trail Shoe",
                "variant_title": "42 / Black",
                "name": "Trail Shoe - 42 / Black",
                "sku": "SHOE-42-BLK",
                "vendor": "Peak",
                "quantity": 2,
                "price": "115.00",
                "price_set": {"shop_money": {"amount": "115.00", "currency_code": "ZAR"}},
                "total_discount": "0.00",
                "taxable": True,
                "requires_shipping": True,
                "gift_card": False,
                "fulfillable_quantity": 2,
                "tax_lines": [
                    {"title": "VAT", "price": "27.00", "rate": 0.15, "channel_liable": False}
                ],
                "discount_allocations": [{"amount": "23.00", "discount_application_index": 0}],
            },
            {
                "id": 13002,
                "variant_id": 44002,
                "product_id": 88002,
                "title": "Sport Socks",
                "variant_title": None,
                "name": "Sport Socks",
                "sku": "SOCK-3PK",
                "vendor": "Peak",
                "quantity": 3,
                "price": "49.99",
                "total_discount": "0.00",
                "taxable": True,
                "tax_lines": [{"title": "VAT", "price": "19.56", "rate": 0.15}],
                "discount_allocations": [],
            },
        ],
        "shipping_lines": [
            {
                "id": 9001,
                "title": "Courier Guy",
                "code": "courier",
                "source": "shopify",
                "price": "115.00",
                "discounted_price": "115.00",
                "tax_lines": [{"title": "VAT", "price": "15.00", "rate": 0.15}],
                "discount_allocations": [],
            }
        ],
        "tax_lines": [{"title": "VAT", "price": "61.56", "rate": 0.15}],
    }


def shopify_exclusive() -> dict[str, Any]:
    """A US shop: prices ex tax, 8% sales tax, a guest (no customer object).

    Lamp: 2 x 40.00, 8.00 off = 72.00; tax 8% of 72.00 = 5.76.
    Bulbs: 4 x 3.50 = 14.00; tax 1.12.
    Shipping 12.00 with 2.00 off = 10.00, not taxed.
    """
    return {
        "id": 5559876543210,
        "name": "#2044",
        "order_number": 2044,
        "email": "guest@example.com",
        "created_at": "2024-06-10T14:05:11-04:00",
        "currency": "USD",
        "financial_status": "pending",
        "taxes_included": False,
        "note": None,
        "total_discounts": "10.00",
        "discount_codes": [{"code": "SPRING", "amount": "10.00", "type": "fixed_amount"}],
        "customer": None,
        "billing_address": {
            "first_name": "Dana",
            "last_name": "Reyes",
            "company": None,
            "address1": "500 Market St",
            "address2": "",
            "city": "San Francisco",
            "province": "California",
            "province_code": "CA",
            "country": "United States",
            "country_code": "US",
            "zip": "94105",
            "phone": None,
        },
        "shipping_address": None,
        "line_items": [
            {
                "id": 1,
                "title": "Desk Lamp",
                "name": "Desk Lamp",
                "sku": "LAMP-01",
                "quantity": 2,
                "price": "40.00",
                "total_discount": "8.00",
                "tax_lines": [{"title": "CA State Tax", "price": "5.76", "rate": 0.08}],
                "discount_allocations": [{"amount": "8.00", "discount_application_index": 0}],
            },
            {
                "id": 2,
                "title": "LED Bulb E27",
                "name": "LED Bulb E27",
                "sku": "BULB-E27",
                "quantity": 4,
                "price": "3.50",
                "total_discount": "0.00",
                "tax_lines": [{"title": "CA State Tax", "price": "1.12", "rate": 0.08}],
                "discount_allocations": [],
            },
        ],
        "shipping_lines": [
            {
                "title": "Standard",
                "price": "12.00",
                "discounted_price": "12.00",
                "tax_lines": [],
                "discount_allocations": [{"amount": "2.00", "discount_application_index": 0}],
            }
        ],
    }


def woocommerce_guest() -> dict[str, Any]:
    """A guest order with a 10% coupon; WooCommerce keeps line figures ex tax.

    Hoodie: 3 units, subtotal 250.00 (before the coupon), total 225.00.
    Cap: 1 unit, subtotal 50.00, total 45.00. VAT 15% on what was paid.
    """
    vat = [{"id": 1, "total": "33.75", "subtotal": "37.5"}]
    return {
        "id": 2045,
        "parent_id": 0,
        "number": "2045",
        "order_key": "wc_order_AbC123xYz",
        "created_via": "checkout",
        "version": "8.8.3",
        "status": "processing",
        "currency": "ZAR",
        "date_created": "2024-05-02T10:15:00",
        "date_created_gmt": "2024-05-02T08:15:00",
        "date_modified": "2024-05-02T10:15:04",
        "date_modified_gmt": "2024-05-02T08:15:04",
        "discount_total": "30.00",
        "discount_tax": "4.50",
        "shipping_total": "60.00",
        "shipping_tax": "9.00",
        "cart_tax": "40.50",
        "total": "379.50",
        "total_tax": "49.50",
        "prices_include_tax": False,
        "customer_id": 0,
        "customer_ip_address": "196.0.2.10",
        "customer_user_agent": "Mozilla/5.0",
        "customer_note": "Please gift wrap",
        "billing": {
            "first_name": "Sipho",
            "last_name": "Dlamini",
            "company": "",
            "address_1": "12 Long Street",
            "address_2": "",
            "city": "Cape Town",
            "state": "WC",
            "postcode": "8001",
            "country": "ZA",
            "email": "sipho@example.com",
            "phone": "+27 82 555 0101",
        },
        "shipping": {
            "first_name": "Sipho",
            "last_name": "Dlamini",
            "company": "",
            "address_1": "3 Dock Road",
            "address_2": "V&A Waterfront",
            "city": "Cape Town",
            "state": "WC",
            "postcode": "8002",
            "country": "ZA",
            "phone": "",
        },
        "payment_method": "payfast",
        "payment_method_title": "PayFast",
        "transaction_id": "PF-778812",
        "date_paid": "2024-05-02T10:15:03",
        "date_paid_gmt": "2024-05-02T08:15:03",
        "meta_data": [],
        "line_items": [
            {
                "id": 315,
                "name": "Hoodie - Blue, M",
                "product_id": 93,
                "variation_id": 101,
                "quantity": 3,
                "tax_class": "",
                "subtotal": "250.00",
                "subtotal_tax": "37.50",
                "total": "225.00",
                "total_tax": "33.75",
                "taxes": vat,
                "meta_data": [],
                "sku": "HOOD-BLU-M",
                "price": 75,
            },
            {
                "id": 316,
                "name": "Cap",
                "product_id": 22,
                "variation_id": 0,
                "quantity": 1,
                "tax_class": "",
                "subtotal": "50.00",
                "subtotal_tax": "7.50",
                "total": "45.00",
                "total_tax": "6.75",
                "taxes": [
                    {"id": 1, "total": "6.75", "subtotal": "7.5"},
                    {"id": 4, "total": "", "subtotal": ""},
                ],
                "meta_data": [],
                "sku": "CAP-01",
                "price": 45,
            },
        ],
        "tax_lines": [
            {
                "id": 320,
                "rate_code": "ZA-VAT-1",
                "rate_id": 1,
                "label": "VAT",
                "compound": False,
                "tax_total": "40.50",
                "shipping_tax_total": "9.00",
                "rate_percent": 15,
                "meta_data": [],
            }
        ],
        "shipping_lines": [
            {
                "id": 318,
                "method_title": "Flat rate",
                "method_id": "flat_rate",
                "instance_id": "3",
                "total": "60.00",
                "total_tax": "9.00",
                "taxes": [{"id": 1, "total": "9.00", "subtotal": ""}],
                "meta_data": [],
            }
        ],
        "fee_lines": [],
        "coupon_lines": [
            {
                "id": 319,
                "code": "save10",
                "discount": "30.00",
                "discount_tax": "4.50",
                "meta_data": [],
            }
        ],
        "refunds": [],
    }


def loaded(order: dict[str, Any]) -> dict[str, Any]:
    out, errors = load_order(order)
    assert errors == []
    assert out is not None
    return out


def line_net(line: dict[str, Any]) -> Decimal:
    """What the ERP mapping writes for a line: qty * price - total_discount, to the cent."""
    net = line["qty"] * Decimal(repr(line["price"])) - Decimal(repr(line["total_discount"]))
    return net.quantize(Decimal("0.01"))


# --------------------------------------------------------------------------
# Signatures
# --------------------------------------------------------------------------


def test_headers() -> None:
    assert connectors.shopify.intake.SIGNATURE_HEADER == "X-Shopify-Hmac-Sha256"
    assert connectors.woocommerce.intake.SIGNATURE_HEADER == "X-WC-Webhook-Signature"
    assert connectors.shopify.intake.DELIVERY_HEADER == "X-Shopify-Webhook-Id"
    assert connectors.woocommerce.intake.DELIVERY_HEADER == "X-WC-Webhook-Delivery-ID"


def test_signatures_match_known_values() -> None:
    # printf '{"id":1}' | openssl dgst -sha256 -hmac SECRET -binary | base64
    assert sign_shopify(b'{"id":1}', "shpss_test") == "1GxccvotnkOedTjSm8S0m/VA3yAUKshyqT52ccNYHj4="
    assert sign_woocommerce(b'{"id":1}', "wc_secret") == (
        "hlMElbkJLWYXum9slTStkeWEeaQIrhf52NjjlrWgua0="
    )


@pytest.mark.parametrize(
    ("sign", "verify"),
    [(sign_shopify, verify_shopify), (sign_woocommerce, verify_woocommerce)],
    ids=["shopify", "woocommerce"],
)
def test_signature_round_trip_and_tamper(sign: Any, verify: Any) -> None:
    body = json.dumps(shopify_inclusive()).encode()
    header = sign(body, "s3cret")
    assert verify(body, header, "s3cret")
    assert verify(body, f"  {header}\n", "s3cret")  # header whitespace is not the signature
    tampered = bytearray(body)
    tampered[len(body) // 2] ^= 0x01
    assert not verify(bytes(tampered), header, "s3cret")
    assert not verify(body + b" ", header, "s3cret")
    assert not verify(body, header, "other")
    assert not verify(body, header[:-2] + "A=", "s3cret")


@pytest.mark.parametrize("verify", [verify_shopify, verify_woocommerce])
@pytest.mark.parametrize(
    ("header", "secret"),
    [(None, "s3cret"), ("", "s3cret"), ("   ", "s3cret"), ("sig", ""), ("sig", None)],
)
def test_missing_header_or_secret_is_false(verify: Any, header: Any, secret: Any) -> None:
    assert verify(b"{}", header, secret) is False


@pytest.mark.parametrize("verify", [verify_shopify, verify_woocommerce])
def test_odd_headers_and_bodies_are_false_not_errors(verify: Any) -> None:
    good = sign_shopify(b"{}", "s3cret")
    assert verify(b"{}", "sïgnåture✓", "s3cret") is False
    assert verify(b"{}", 12345, "s3cret") is False
    assert verify("{}", good, "s3cret") is False  # a str body was already decoded: not raw
    assert verify(None, good, "s3cret") is False


@pytest.mark.parametrize("size", [0, 1, 2046, 2047, 2048, 4094, 4095, 65_536, 1_000_003])
def test_a_body_signed_in_pieces_signs_as_one(size: int) -> None:
    """The HMAC is fed in pieces (to keep the GIL on the event loop): every
    length around a piece's edge signs as the whole body at once would."""
    body = bytes(i * 7 % 251 for i in range(size))
    whole = base64.b64encode(hmac.new(b"s3cret", body, "sha256").digest()).decode()
    assert sign_shopify(body, "s3cret") == whole
    assert sign_shopify(memoryview(body), "s3cret") == whole
    assert verify_shopify(bytearray(body), whole, "s3cret")


def test_signing_needs_a_secret() -> None:
    with pytest.raises(ValueError, match="secret"):
        sign_shopify(b"{}", "")


# --------------------------------------------------------------------------
# Shopify
# --------------------------------------------------------------------------


def test_shopify_tax_inclusive_order() -> None:
    canonical = shopify_order(shopify_inclusive())
    order = loaded(canonical)

    assert order["channel"] == "shopify"
    assert order["channel_order_code"] == "#1001"
    assert order["instruction"] == "add_order"
    assert order["ordered_date"] == "2024-05-01T09:30:00+02:00"
    assert order["notes"] == "Leave at reception"
    assert order["customer"] == {
        "source_customer_code": None,
        "channel_customer_code": "7001234567",
        "first_name": "Thandi",
        "last_name": "Nkosi",
        "email": "thandi@example.co.za",
    }
    assert order["billing_address"] == {
        "first_name": "Thandi",
        "last_name": "Nkosi",
        "company": "Nkosi Outdoor",
        "address1": "14 Bree Street",
        "address2": "Unit 3",
        "city": "Cape Town",
        "province": "Western Cape",
        "province_code": "WC",
        "country": "South Africa",
        "country_code": "ZA",
        "zip": "8001",
        "phone": "+27 21 555 0199",
    }
    assert order["shipping_address"]["company"] is None
    assert order["shipping_address"]["address1"] == "14 Bree Street"

    shoes, socks = order["line_items"]
    # Shoes: paid 207.00 incl, of which 27.00 VAT: the ex-tax share is 180/207.
    # Per unit: 115.00 * 180 / 207 = 100.00; discount: 23.00 * 180 / 207 = 20.00.
    # (Subtracting VAT per unit, 115.00 - 27.00 / 2 = 101.50, would be wrong: the
    # VAT was charged on the discounted amount.)
    assert shoes == {
        "sku": "SHOE-42-BLK",
        "title": "Trail Shoe - 42 / Black",
        "qty": 2,
        "price": 100.0,
        "total_discount": 20.0,
        "tax_lines": [{"code": None, "title": "VAT", "price": 27.0, "rate": 0.15}],
    }
    # Socks, undiscounted: 49.99 - 19.56 / 3 = 49.99 - 6.52 = 43.47 per unit.
    assert socks["price"] == 43.47
    assert socks["total_discount"] == 0.0
    # The ERP's line nets are exactly what Shopify charged ex tax.
    assert line_net(shoes) == Decimal("207.00") - Decimal("27.00")
    assert line_net(socks) == Decimal("149.97") - Decimal("19.56")

    # Shipping 115.00 incl less 15.00 VAT.
    assert order["shipping_lines"] == [
        {
            "title": "Courier Guy",
            "price": 100.0,
            "tax_lines": [{"code": None, "title": "VAT", "price": 15.0, "rate": 0.15}],
        }
    ]
    # The summary discount, ex tax like the lines: 23.00 less its 3.00 VAT.
    assert order["total_discount"] == 20.0
    assert {m["key"]: m["value"] for m in order["meta"]} == {
        "channel_order_id": "5551234567890",
        "channel_status": "paid",
        "currency": "ZAR",
        "discount_codes": "WINTER10",
        "taxes_included": "true",
    }


def test_shopify_tax_exclusive_guest_order() -> None:
    order = loaded(shopify_order(shopify_exclusive()))

    assert order["channel_order_code"] == "#2044"
    # financial_status "pending" is not "paid": stored, not raised.
    assert order["instruction"] == "sync_order"
    # No customer object: the billing name and the order's email stand in.
    assert order["customer"] == {
        "source_customer_code": None,
        "channel_customer_code": None,
        "first_name": "Dana",
        "last_name": "Reyes",
        "email": "guest@example.com",
    }
    assert order["shipping_address"] is None
    assert order["notes"] is None

    lamp, bulbs = order["line_items"]
    # Prices are already ex tax: 40.00 per unit, the 8.00 allocation is the discount.
    assert (lamp["price"], lamp["total_discount"], lamp["qty"]) == (40.0, 8.0, 2)
    assert line_net(lamp) == Decimal("72.00")
    assert (bulbs["price"], bulbs["total_discount"]) == (3.5, 0.0)
    # Shipping 12.00 with its 2.00 discount taken off (no discount field for shipping).
    assert order["shipping_lines"] == [{"title": "Standard", "price": 10.0, "tax_lines": []}]
    assert order["total_discount"] == 10.0


def test_shopify_instruction_follows_the_configured_status() -> None:
    payload = shopify_exclusive()
    assert shopify_order(payload, add_order_status="pending")["instruction"] == "add_order"
    payload["financial_status"] = "PAID"
    assert shopify_order(payload)["instruction"] == "add_order"
    for status in ("authorized", "refunded", "voided", None):
        payload["financial_status"] = status
        assert shopify_order(payload)["instruction"] == "sync_order"
    payload["financial_status"] = "authorized"
    assert shopify_order(payload, add_order_status="authorized")["instruction"] == "add_order"


def test_shopify_order_code_falls_back_to_order_number_then_id() -> None:
    payload = shopify_exclusive()
    del payload["name"]
    assert shopify_order(payload)["channel_order_code"] == "2044"
    del payload["order_number"]
    assert shopify_order(payload)["channel_order_code"] == "5559876543210"
    del payload["id"]
    with pytest.raises(ChannelPayloadError, match="name is missing"):
        shopify_order(payload)


def test_shopify_legacy_line_total_discount_is_read_when_there_are_no_allocations() -> None:
    payload = shopify_exclusive()
    del payload["line_items"][0]["discount_allocations"]
    lamp = shopify_order(payload)["line_items"][0]
    assert lamp["total_discount"] == 8.0  # from total_discount, not counted twice


def test_shopify_inclusive_price_three_units_keeps_four_places() -> None:
    # 3 x 100.00 incl 15% = 300.00, VAT 300.00 * 15 / 115 = 39.13.
    # Per unit: 100.00 * (300.00 - 39.13) / 300.00 = 260.87 / 3 = 86.956666… -> 86.9567.
    # Rounded to cents (86.96) the ERP would write 260.88, a cent more than was charged.
    payload = shopify_inclusive()
    payload["line_items"] = [
        {
            "title": "Tent",
            "name": "Tent",
            "sku": "TENT-2P",
            "quantity": 3,
            "price": "100.00",
            "tax_lines": [{"title": "VAT", "price": "39.13", "rate": 0.15}],
            "discount_allocations": [],
        }
    ]
    payload["total_discounts"] = "0.00"
    order = loaded(shopify_order(payload))
    (tent,) = order["line_items"]
    assert tent["price"] == 86.9567
    assert line_net(tent) == Decimal("260.87")


def test_shopify_free_line_uses_the_rate() -> None:
    # Given away: nothing paid, no VAT charged, so the rate says what is tax:
    # 57.50 / 1.15 = 50.00 per unit, and the whole 57.50 discount is 50.00 ex tax.
    payload = shopify_inclusive()
    payload["line_items"] = [
        {
            "name": "Gift Bag",
            "sku": "BAG-01",
            "quantity": 1,
            "price": "57.50",
            "tax_lines": [{"title": "VAT", "price": "0.00", "rate": 0.15}],
            "discount_allocations": [{"amount": "57.50"}],
        }
    ]
    del payload["total_discounts"]
    order = loaded(shopify_order(payload))
    assert order["line_items"][0]["price"] == 50.0
    assert order["line_items"][0]["total_discount"] == 50.0
    assert order["total_discount"] == 50.0


def test_shopify_untaxed_line_in_an_inclusive_shop() -> None:
    payload = shopify_inclusive()
    payload["line_items"][1]["tax_lines"] = []
    assert shopify_order(payload)["line_items"][1]["price"] == 49.99


def test_a_line_without_a_sku_is_kept_and_named_by_load_order() -> None:
    payload = shopify_inclusive()
    payload["line_items"][1]["sku"] = ""
    canonical = shopify_order(payload)
    assert len(canonical["line_items"]) == 2
    assert canonical["line_items"][1]["sku"] is None
    order, errors = load_order(canonical)
    assert order is None
    assert errors == [("line_items[1].sku", "sku is required")]


# --------------------------------------------------------------------------
# WooCommerce
# --------------------------------------------------------------------------


def test_woocommerce_guest_order_with_coupon() -> None:
    order = loaded(woocommerce_order(woocommerce_guest()))

    assert order["channel"] == "woocommerce"
    assert order["channel_order_code"] == "2045"
    assert order["instruction"] == "add_order"
    assert order["ordered_date"] == "2024-05-02T08:15:00+00:00"  # the GMT time, not local
    assert order["notes"] == "Please gift wrap"
    # customer_id 0 is a guest: no customer code, names and email from billing.
    assert order["customer"] == {
        "source_customer_code": None,
        "channel_customer_code": None,
        "first_name": "Sipho",
        "last_name": "Dlamini",
        "email": "sipho@example.com",
    }
    assert order["billing_address"] == {
        "first_name": "Sipho",
        "last_name": "Dlamini",
        "company": None,
        "address1": "12 Long Street",
        "address2": None,
        "city": "Cape Town",
        "province": "WC",
        "province_code": "WC",
        "country": "ZA",
        "country_code": "ZA",
        "zip": "8001",
        "phone": "+27 82 555 0101",
    }
    assert order["shipping_address"]["address2"] == "V&A Waterfront"
    assert order["shipping_address"]["phone"] is None

    hoodie, cap = order["line_items"]
    # Hoodie: subtotal 250.00 for 3 -> 83.3333 per unit; the coupon took 250.00 - 225.00.
    vat = {"code": "ZA-VAT-1", "title": "VAT", "rate": 0.15}
    assert hoodie == {
        "sku": "HOOD-BLU-M",
        "title": "Hoodie - Blue, M",
        "qty": 3,
        "price": 83.3333,
        "total_discount": 25.0,
        "tax_lines": [dict(vat, price=33.75)],
    }
    # 3 x 83.3333 - 25.00 = 224.9999, which the ERP writes as the 225.00 charged.
    assert line_net(hoodie) == Decimal("225.00")
    # Cap: 50.00 for 1, 5.00 off; the blank-total rate (id 4) did not apply.
    assert (cap["price"], cap["total_discount"]) == (50.0, 5.0)
    assert cap["tax_lines"] == [dict(vat, price=6.75)]

    assert order["shipping_lines"] == [
        {"title": "Flat rate", "price": 60.0, "tax_lines": [dict(vat, price=9.0)]}
    ]
    assert order["total_discount"] == 30.0  # discount_total is ex tax (discount_tax apart)
    assert {m["key"]: m["value"] for m in order["meta"]} == {
        "channel_order_id": "2045",
        "channel_status": "processing",
        "currency": "ZAR",
        "discount_codes": "save10",
        "taxes_included": "false",
    }


def test_woocommerce_registered_customer_and_local_date_fallback() -> None:
    payload = woocommerce_guest()
    payload["customer_id"] = 57
    del payload["date_created_gmt"]
    order = loaded(woocommerce_order(payload))
    assert order["customer"]["channel_customer_code"] == "57"
    assert order["ordered_date"] == "2024-05-02T10:15:00+00:00"


def test_woocommerce_tax_inclusive_shop_still_sends_ex_tax_subtotals() -> None:
    # 100.00 incl 15%: WooCommerce stores the subtotal ex tax at full precision.
    payload = woocommerce_guest()
    payload["prices_include_tax"] = True
    payload["line_items"] = [
        {
            "name": "Tent",
            "sku": "TENT-2P",
            "quantity": 1,
            "subtotal": "86.956522",
            "total": "86.956522",
            "taxes": [{"id": 1, "total": "13.043478", "subtotal": "13.043478"}],
        }
    ]
    order = loaded(woocommerce_order(payload))
    (tent,) = order["line_items"]
    assert (tent["price"], tent["total_discount"]) == (86.9565, 0.0)
    assert tent["tax_lines"][0]["price"] == 13.04


def test_woocommerce_virtual_order_has_no_shipping_address() -> None:
    payload = woocommerce_guest()
    payload["shipping"] = {key: "" for key in payload["shipping"]}
    payload["shipping_lines"] = []
    order = loaded(woocommerce_order(payload))
    assert order["shipping_address"] is None
    assert order["shipping_lines"] == []


@pytest.mark.parametrize(
    ("status", "configured", "instruction"),
    [
        ("processing", "processing", "add_order"),
        ("on-hold", "processing", "sync_order"),
        ("pending", "processing", "sync_order"),
        ("completed", "processing", "sync_order"),
        ("completed", "completed", "add_order"),
    ],
)
def test_woocommerce_instruction_follows_the_status(
    status: str, configured: str, instruction: str
) -> None:
    payload = woocommerce_guest()
    payload["status"] = status
    assert woocommerce_order(payload, add_order_status=configured)["instruction"] == instruction


def test_woocommerce_number_falls_back_to_id() -> None:
    payload = woocommerce_guest()
    payload["number"] = ""
    assert woocommerce_order(payload)["channel_order_code"] == "2045"


def test_woocommerce_fee_is_refused_not_dropped() -> None:
    payload = woocommerce_guest()
    payload["fee_lines"] = [{"id": 1, "name": "Gift wrap", "total": "25.00", "total_tax": "3.75"}]
    with pytest.raises(ChannelPayloadError, match=r'^fee_lines\[0\]\.total "25.00" \(Gift wrap\)'):
        woocommerce_order(payload)
    payload["fee_lines"] = [{"id": 1, "name": "Nothing", "total": "0.00"}]
    loaded(woocommerce_order(payload))


# --------------------------------------------------------------------------
# Every variation loads; bad payloads name the field
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: shopify_order(shopify_inclusive()),
        lambda: shopify_order(shopify_exclusive()),
        lambda: woocommerce_order(woocommerce_guest()),
    ],
    ids=["shopify-inclusive", "shopify-exclusive", "woocommerce"],
)
def test_canonical_shape(make: Any) -> None:
    canonical = make()
    assert set(canonical) == {
        "channel",
        "channel_order_code",
        "instruction",
        "ordered_date",
        "notes",
        "customer",
        "billing_address",
        "shipping_address",
        "line_items",
        "shipping_lines",
        "total_discount",
        "meta",
    }
    assert set(canonical["billing_address"]) == set(ADDRESS_FIELDS)
    order = loaded(canonical)
    # load_order keeps the figures exactly as emitted.
    for emitted, kept in zip(canonical["line_items"], order["line_items"], strict=True):
        assert (emitted["price"], emitted["total_discount"]) == (
            kept["price"],
            kept["total_discount"],
        )


def test_minimal_payloads_load() -> None:
    shopify = {"id": 1, "line_items": [{"sku": "A", "quantity": 1, "price": "10"}]}
    woo = {"id": 2, "line_items": [{"sku": "A", "quantity": 1, "subtotal": "10", "total": "10"}]}
    assert loaded(shopify_order(shopify))["line_items"][0]["price"] == 10.0
    assert loaded(woocommerce_order(woo))["line_items"][0]["price"] == 10.0


def _set(payload: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(payload)
    target: Any = out
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return out


_DELETE = object()


def _three_lines() -> dict[str, Any]:
    payload = shopify_exclusive()
    payload["line_items"].append(dict(payload["line_items"][1], id=3, sku="BULB-B22"))
    return payload


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("line_items", 2, "price"), "abc", 'line_items[2].price "abc" is not a number'),
        (("line_items", 0, "price"), None, "line_items[0].price is missing"),
        (("line_items", 0, "price"), "1,000.00", 'line_items[0].price "1,000.00" is not'),
        (("line_items", 0, "price"), "NaN", 'line_items[0].price "NaN" is not a number'),
        (("line_items", 1, "quantity"), "1.5", 'line_items[1].quantity "1.5" is not a whole'),
        (("line_items", 1, "quantity"), 0, 'line_items[1].quantity "0" must be at least 1'),
        (("line_items", 1, "quantity"), _DELETE, "line_items[1].quantity is missing"),
        (("line_items", 1), "SKU-1", "line_items[1] must be an object"),
        (("line_items",), _DELETE, "line_items is missing"),
        (("line_items",), [], "line_items is empty"),
        (("line_items",), {"sku": "A"}, "line_items must be a list"),
        (
            ("line_items", 0, "tax_lines", 0, "price"),
            "x",
            'line_items[0].tax_lines[0].price "x" is not a number',
        ),
        (
            ("line_items", 0, "discount_allocations", 0, "amount"),
            True,
            'line_items[0].discount_allocations[0].amount "True" is not a number',
        ),
        (("shipping_lines", 0, "price"), "free", 'shipping_lines[0].price "free" is not'),
        (("total_discounts",), "ten", 'total_discounts "ten" is not a number'),
        (("taxes_included",), "maybe", 'taxes_included "maybe" is not true or false'),
        (("customer",), "Dana", "customer must be an object"),
        (("billing_address", "city"), ["x"], "billing_address.city \"['x']\" is not text"),
    ],
)
def test_bad_shopify_payloads_name_the_field(
    path: tuple[Any, ...], value: Any, message: str
) -> None:
    with pytest.raises(ChannelPayloadError) as caught:
        shopify_order(_set(_three_lines(), path, value))
    assert str(caught.value).startswith(message)


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("line_items", 0, "subtotal"), "abc", 'line_items[0].subtotal "abc" is not a number'),
        (("line_items", 0, "subtotal"), _DELETE, "line_items[0].subtotal is missing"),
        (("line_items", 1, "total"), "", "line_items[1].total is missing"),
        (("line_items", 1, "quantity"), -1, 'line_items[1].quantity "-1" must be at least 1'),
        (("line_items", 0, "taxes", 0, "total"), "?", 'line_items[0].taxes[0].total "?" is not'),
        (("shipping_lines", 0, "total"), "1e999x", 'shipping_lines[0].total "1e999x" is not'),
        (("discount_total",), "1e30", 'discount_total "1e30" is too large'),
        (("billing",), [], "billing must be an object"),
        (("tax_lines", 0, "rate_percent"), "15%", 'tax_lines[0].rate_percent "15%" is not'),
        (("coupon_lines",), "save10", "coupon_lines must be a list"),
    ],
)
def test_bad_woocommerce_payloads_name_the_field(
    path: tuple[Any, ...], value: Any, message: str
) -> None:
    with pytest.raises(ChannelPayloadError) as caught:
        woocommerce_order(_set(woocommerce_guest(), path, value))
    assert str(caught.value).startswith(message)


@pytest.mark.parametrize("transform", [shopify_order, woocommerce_order])
@pytest.mark.parametrize("payload", [None, [], "order", b"{}", 42])
def test_a_payload_that_is_not_an_object(transform: Any, payload: Any) -> None:
    with pytest.raises(ChannelPayloadError, match="must be an object"):
        transform(payload)


def test_errors_are_value_errors() -> None:
    # Callers that already catch ValueError for bad input catch these too.
    assert issubclass(ChannelPayloadError, ValueError)
