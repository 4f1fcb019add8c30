"""The emulated Admin GraphQL schema: a subset of Shopify's, in SDL.

Names, argument lists and payload shapes follow Shopify's public Admin
GraphQL reference (productSet, productByIdentifier, products,
inventorySetQuantities, locations, stagedUploadsCreate,
bulkOperationRunMutation, currentBulkOperation, node), so a client written
against the reference runs here unchanged; fields the hub has no use for are
left out rather than faked.
"""

from __future__ import annotations

SDL = """
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
  INVALID_INVENTORY_ITEM
  INVALID_LOCATION
  INVALID_NAME
  INVALID_REASON
  COMPARE_QUANTITY_REQUIRED
  COMPARE_QUANTITY_STALE
  INVALID_QUANTITY_TOO_HIGH
  INVALID_QUANTITY_TOO_LOW
}

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

type InventoryItem implements Node {
  id: ID!
  sku: String
  tracked: Boolean!
  inventoryLevel(locationId: ID!): InventoryLevel
}

type ProductVariant implements Node {
  id: ID!
  sku: String
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

input InventoryItemInput { sku: String tracked: Boolean }

input ProductSetInventoryInput { locationId: ID! name: String! quantity: Int! }

input ProductVariantSetInput {
  id: ID
  optionValues: [VariantOptionValueInput!]!
  sku: String
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
  productOptions: [OptionSetInput!]
  variants: [ProductVariantSetInput!]
  metafields: [MetafieldInput!]
}

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
