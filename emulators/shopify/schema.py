"""The emulated Admin GraphQL schema: a subset of Shopify's, in SDL.

Names, argument lists and payload shapes follow Shopify's public Admin
GraphQL reference (productSet, productByIdentifier, products,
inventorySetQuantities, locations, location, shop, metafieldDefinitionCreate,
stagedUploadsCreate, bulkOperationRunMutation, currentBulkOperation, node),
so a client written against the reference runs here unchanged; fields the hub
has no use for are left out rather than faked.

The schema differs by API version where Shopify's did (the reference's
inventory changelogs): up to 2025-10 ``inventorySetQuantities`` checks
``compareQuantity`` unless ``ignoreCompareQuantity``; 2026-01 adds
``changeFromQuantity`` (overriding both) and the ``@idempotent(key:)``
directive; from 2026-04 the old fields are gone, ``changeFromQuantity`` must
be given on every quantity (``null`` skips the check) and the directive is
required. :func:`era` reads a URL's version as one of these three.
"""

from __future__ import annotations

import re

# The eras of the schema, by the first version of each (see the module's text).
ERA_2025_10, ERA_2026_01, ERA_2026_04 = 0, 1, 2
_VERSION = re.compile(r"^(\d{4})-(\d{2})$")


def era(version: str) -> int:
    """The schema era of an API version in a URL ("unstable" is the newest)."""
    if version == "unstable":
        return ERA_2026_04
    found = _VERSION.match(version)
    if found is None:
        return ERA_2025_10
    stamp = (int(found.group(1)), int(found.group(2)))
    if stamp >= (2026, 4):
        return ERA_2026_04
    return ERA_2026_01 if stamp >= (2026, 1) else ERA_2025_10


_INVENTORY_INPUTS = {
    ERA_2025_10: """
input InventoryQuantityInput {
  inventoryItemId: ID!
  locationId: ID!
  quantity: Int!
  compareQuantity: Int
}

input InventorySetQuantitiesInput {
  name: String!
  reason: String!
  referenceDocumentUri: String
  ignoreCompareQuantity: Boolean
  quantities: [InventoryQuantityInput!]!
}
""",
    ERA_2026_01: """
directive @idempotent(key: String!) on FIELD

input InventoryQuantityInput {
  inventoryItemId: ID!
  locationId: ID!
  quantity: Int!
  compareQuantity: Int
  changeFromQuantity: Int
}

input InventorySetQuantitiesInput {
  name: String!
  reason: String!
  referenceDocumentUri: String
  ignoreCompareQuantity: Boolean
  quantities: [InventoryQuantityInput!]!
}
""",
    ERA_2026_04: """
directive @idempotent(key: String!) on FIELD

input InventoryQuantityInput {
  inventoryItemId: ID!
  locationId: ID!
  quantity: Int!
  changeFromQuantity: Int
}

input InventorySetQuantitiesInput {
  name: String!
  reason: String!
  referenceDocumentUri: String
  quantities: [InventoryQuantityInput!]!
}
""",
}


def sdl(schema_era: int = ERA_2025_10) -> str:
    """The SDL of one era."""
    return _SDL + _INVENTORY_INPUTS[schema_era]


_SDL = """
scalar Money
scalar URL
scalar DateTime
scalar UnsignedInt64

interface Node { id: ID! }

enum ProductStatus { ACTIVE ARCHIVED DRAFT }

enum ProductSetUserErrorCode {
  BLANK
  INVALID
  INVALID_PRODUCT
  INVALID_VARIANT
  PRODUCT_DOES_NOT_EXIST
  DUPLICATED_INPUT
  GREATER_THAN_OR_EQUAL_TO
  TAKEN
  GENERIC_ERROR
}

enum InventorySetQuantitiesUserErrorCode {
  CHANGE_FROM_QUANTITY_STALE
  IDEMPOTENCY_CONCURRENT_REQUEST
  IDEMPOTENCY_KEY_PARAMETER_MISMATCH
  IDEMPOTENCY_PREVIOUS_ATTEMPT_FAILED
  INVALID_INVENTORY_ITEM
  INVALID_LOCATION
  INVALID_NAME
  INVALID_REASON
  COMPARE_QUANTITY_REQUIRED
  COMPARE_QUANTITY_STALE
  INVALID_QUANTITY_TOO_HIGH
  INVALID_QUANTITY_TOO_LOW
}

enum MetafieldOwnerType { PRODUCT PRODUCTVARIANT COLLECTION CUSTOMER ORDER LOCATION }

enum MetafieldDefinitionCreateUserErrorCode {
  BLANK
  INCLUSION
  INVALID
  LIMIT_EXCEEDED
  RESERVED_NAMESPACE_KEY
  TAKEN
  TOO_LONG
  TOO_SHORT
  UNSTRUCTURED_ALREADY_EXISTS
}

enum WeightUnit { GRAMS KILOGRAMS OUNCES POUNDS }

enum StagedUploadTargetGenerateUploadResource {
  BULK_MUTATION_VARIABLES
  FILE
  IMAGE
  URL_REDIRECT_IMPORT
}

enum StagedUploadHttpMethodType { POST PUT }

enum BulkOperationStatus { CANCELED CANCELING COMPLETED CREATED EXPIRED FAILED RUNNING }
enum BulkOperationType { MUTATION QUERY }
enum BulkOperationErrorCode { ACCESS_DENIED INTERNAL_SERVER_ERROR TIMEOUT }
enum BulkMutationErrorCode {
  INTERNAL_FILE_SERVER_ERROR
  INVALID_MUTATION
  INVALID_STAGED_UPLOAD_FILE
  NO_SUCH_FILE
  OPERATION_IN_PROGRESS
}

type PageInfo {
  hasNextPage: Boolean!
  hasPreviousPage: Boolean!
  startCursor: String
  endCursor: String
}

type Metafield {
  id: ID!
  namespace: String!
  key: String!
  value: String!
  type: String!
}

type ProductOptionValue { name: String! }
type ProductOption { id: ID! name: String! position: Int! optionValues: [ProductOptionValue!]! }
type SelectedOption { name: String! value: String! }

type Location implements Node {
  id: ID!
  name: String!
  isActive: Boolean!
}

type LocationEdge { cursor: String! node: Location! }
type LocationConnection { nodes: [Location!]! edges: [LocationEdge!]! pageInfo: PageInfo! }

type InventoryQuantity { name: String! quantity: Int! }

type InventoryLevel {
  id: ID!
  location: Location!
  quantities(names: [String!]!): [InventoryQuantity!]!
}

type Weight { unit: WeightUnit! value: Float! }
type InventoryItemMeasurement { id: ID! weight: Weight }

type InventoryItem implements Node {
  id: ID!
  sku: String
  tracked: Boolean!
  measurement: InventoryItemMeasurement!
  inventoryLevel(locationId: ID!): InventoryLevel
}

type ProductVariant implements Node {
  id: ID!
  sku: String
  barcode: String
  title: String!
  price: Money!
  compareAtPrice: Money
  selectedOptions: [SelectedOption!]!
  inventoryItem: InventoryItem!
  inventoryQuantity: Int
}

type ProductVariantEdge { cursor: String! node: ProductVariant! }
type ProductVariantConnection {
  nodes: [ProductVariant!]!
  edges: [ProductVariantEdge!]!
  pageInfo: PageInfo!
}

type Product implements Node {
  id: ID!
  handle: String!
  title: String!
  status: ProductStatus!
  vendor: String!
  productType: String!
  descriptionHtml: String!
  tags: [String!]!
  options(first: Int): [ProductOption!]!
  variants(first: Int, after: String): ProductVariantConnection!
  metafield(namespace: String, key: String!): Metafield
  updatedAt: DateTime!
}

type ProductEdge { cursor: String! node: Product! }
type ProductConnection { nodes: [Product!]! edges: [ProductEdge!]! pageInfo: PageInfo! }

type ProductSetUserError {
  field: [String!]
  message: String!
  code: ProductSetUserErrorCode
}

type ProductSetOperation implements Node { id: ID! status: String! }

type ProductSetPayload {
  product: Product
  productSetOperation: ProductSetOperation
  userErrors: [ProductSetUserError!]!
}

type InventoryChange {
  name: String!
  delta: Int!
  quantityAfterChange: Int
  item: InventoryItem
  location: Location
}

type InventoryAdjustmentGroup {
  id: ID!
  reason: String!
  referenceDocumentUri: String
  changes(
    inventoryItemIds: [ID!]
    locationIds: [ID!]
    quantityNames: [String!]
  ): [InventoryChange!]!
}

type InventorySetQuantitiesUserError {
  field: [String!]
  message: String!
  code: InventorySetQuantitiesUserErrorCode
}

type InventorySetQuantitiesPayload {
  inventoryAdjustmentGroup: InventoryAdjustmentGroup
  userErrors: [InventorySetQuantitiesUserError!]!
}

type UserError { field: [String!] message: String! }

type Shop { id: ID! name: String! myshopifyDomain: String! currencyCode: String! }

type MetafieldDefinitionType { name: String! }
type MetafieldDefinition implements Node {
  id: ID!
  name: String!
  namespace: String!
  key: String!
  type: MetafieldDefinitionType!
  ownerType: MetafieldOwnerType!
}

type MetafieldDefinitionCreateUserError {
  field: [String!]
  message: String!
  code: MetafieldDefinitionCreateUserErrorCode
  elementIndex: Int
}

type MetafieldDefinitionCreatePayload {
  createdDefinition: MetafieldDefinition
  userErrors: [MetafieldDefinitionCreateUserError!]!
}

type StagedUploadParameter { name: String! value: String! }
type StagedMediaUploadTarget {
  url: URL
  resourceUrl: URL
  parameters: [StagedUploadParameter!]!
}
type StagedUploadsCreatePayload {
  stagedTargets: [StagedMediaUploadTarget!]
  userErrors: [UserError!]!
}

type BulkOperation implements Node {
  id: ID!
  status: BulkOperationStatus!
  type: BulkOperationType!
  errorCode: BulkOperationErrorCode
  createdAt: DateTime!
  completedAt: DateTime
  objectCount: UnsignedInt64!
  rootObjectCount: UnsignedInt64!
  fileSize: UnsignedInt64
  url: URL
  partialDataUrl: URL
  query: String!
}

type BulkMutationUserError {
  field: [String!]
  message: String!
  code: BulkMutationErrorCode
}

type BulkOperationRunMutationPayload {
  bulkOperation: BulkOperation
  userErrors: [BulkMutationUserError!]!
}

input UniqueMetafieldValueInput { namespace: String key: String! value: String! }

input ProductSetIdentifiers { id: ID handle: String customId: UniqueMetafieldValueInput }
input ProductIdentifierInput { id: ID handle: String customId: UniqueMetafieldValueInput }

input OptionValueSetInput { id: ID name: String }
input OptionSetInput { id: ID name: String position: Int values: [OptionValueSetInput!] }
input VariantOptionValueInput { id: ID name: String optionId: ID optionName: String }

input WeightInput { value: Float! unit: WeightUnit! }
input InventoryItemMeasurementInput { weight: WeightInput shippingPackageId: ID }
input InventoryItemInput { sku: String tracked: Boolean measurement: InventoryItemMeasurementInput }

input ProductSetInventoryInput { locationId: ID! name: String! quantity: Int! }

input ProductVariantSetInput {
  id: ID
  optionValues: [VariantOptionValueInput!]!
  sku: String
  barcode: String
  price: Money
  compareAtPrice: Money
  inventoryItem: InventoryItemInput
  inventoryQuantities: [ProductSetInventoryInput!]
  position: Int
}

input MetafieldInput { id: ID namespace: String key: String value: String type: String }

input ProductSetInput {
  id: ID
  title: String
  handle: String
  status: ProductStatus
  vendor: String
  productType: String
  descriptionHtml: String
  tags: [String!]
  productOptions: [OptionSetInput!]
  variants: [ProductVariantSetInput!]
  metafields: [MetafieldInput!]
}

input MetafieldDefinitionInput {
  name: String!
  namespace: String
  key: String!
  description: String
  type: String!
  ownerType: MetafieldOwnerType!
  pin: Boolean
}

input StagedUploadInput {
  resource: StagedUploadTargetGenerateUploadResource!
  filename: String!
  mimeType: String!
  httpMethod: StagedUploadHttpMethodType
  fileSize: UnsignedInt64
}

type QueryRoot {
  products(first: Int, last: Int, after: String, before: String, query: String): ProductConnection!
  product(id: ID!): Product
  productByIdentifier(identifier: ProductIdentifierInput!): Product
  locations(first: Int, after: String): LocationConnection!
  location(id: ID): Location
  shop: Shop!
  inventoryItem(id: ID!): InventoryItem
  node(id: ID!): Node
  currentBulkOperation(type: BulkOperationType = QUERY): BulkOperation
}

type Mutation {
  productSet(
    input: ProductSetInput!
    identifier: ProductSetIdentifiers
    synchronous: Boolean = true
  ): ProductSetPayload
  inventorySetQuantities(input: InventorySetQuantitiesInput!): InventorySetQuantitiesPayload
  metafieldDefinitionCreate(definition: MetafieldDefinitionInput!): MetafieldDefinitionCreatePayload
  stagedUploadsCreate(input: [StagedUploadInput!]!): StagedUploadsCreatePayload
  bulkOperationRunMutation(
    mutation: String!
    stagedUploadPath: String!
    clientIdentifier: String
    groupObjects: Boolean
  ): BulkOperationRunMutationPayload
}

schema { query: QueryRoot mutation: Mutation }
"""

# The oldest era's SDL, as the module exported before versions mattered.
SDL = sdl(ERA_2025_10)
