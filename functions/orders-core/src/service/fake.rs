//! An in-memory store behind the ports, for testing the use cases' own logic (replays, retries,
//! re-reads, state checks) with `cargo test` alone. What the database guarantees (atomicity,
//! conditions under concurrency) is tested against DynamoDB Local in `tests/`.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use platform::consumer::Applied;
use platform::dynamo::StoreError;

use super::ports::{
    CancelOrder, EventInbox, NewOrder, PlaceOrder, ReadOrder, ReadProducts, StoredOrder,
};
use super::{ApplyError, CancelOrderError, CreateOrderError};
use crate::domain::{Order, OrderId, OrderStatus, Product, ProductId, Stock};
use crate::events::OrderEvent;

#[derive(Default)]
pub(super) struct FakeStore {
    pub products: Mutex<HashMap<ProductId, Product>>,
    pub orders: Mutex<HashMap<OrderId, StoredOrder>>,
    /// (consumer, event id) of every event applied.
    pub inbox: Mutex<HashSet<(String, String)>>,
    /// The next this many transactions fail as a conflict would.
    pub conflicts: Mutex<u32>,
    pub transactions: Mutex<u32>,
}

impl FakeStore {
    pub fn with_product(self, product: Product) -> Self {
        self.products
            .lock()
            .unwrap()
            .insert(product.id.clone(), product);
        self
    }

    fn conflict(&self) -> bool {
        *self.transactions.lock().unwrap() += 1;
        let mut conflicts = self.conflicts.lock().unwrap();
        let conflicted = *conflicts > 0;
        *conflicts = conflicts.saturating_sub(1);
        conflicted
    }

    pub fn stock(&self, id: &ProductId) -> i64 {
        self.products.lock().unwrap()[id].stock.get()
    }

    pub fn set_status(&self, id: OrderId, status: OrderStatus) {
        let mut orders = self.orders.lock().unwrap();
        let stored = orders.get_mut(&id).unwrap();
        stored.order.status = status;
    }
}

impl ReadOrder for FakeStore {
    async fn order(&self, id: OrderId) -> Result<Option<StoredOrder>, StoreError> {
        Ok(self.orders.lock().unwrap().get(&id).cloned())
    }
}

impl ReadProducts for FakeStore {
    async fn products(
        &self,
        ids: &[&ProductId],
        _consistent: bool,
    ) -> Result<HashMap<ProductId, Product>, StoreError> {
        let products = self.products.lock().unwrap();
        Ok(ids
            .iter()
            .filter_map(|id| products.get(*id).map(|p| ((*id).clone(), p.clone())))
            .collect())
    }
}

impl PlaceOrder for FakeStore {
    async fn place_order(&self, new: &NewOrder<'_>) -> Result<(), CreateOrderError> {
        if self.conflict() {
            return Err(StoreError::Transient.into());
        }
        let mut orders = self.orders.lock().unwrap();
        if orders.contains_key(&new.order.order_id) {
            return Err(CreateOrderError::OrderExists);
        }
        let mut products = self.products.lock().unwrap();
        for line in &new.order.items {
            let product = products
                .get(&line.product_id)
                .ok_or_else(|| CreateOrderError::UnknownProduct(line.product_id.clone()))?;
            if product.stock.get() < i64::from(line.quantity.get()) {
                return Err(CreateOrderError::InsufficientStock {
                    product: line.product_id.clone(),
                    requested: line.quantity,
                    available: product.stock.get(),
                });
            }
            if product.price != line.unit_price {
                return Err(CreateOrderError::PriceChanged(line.product_id.clone()));
            }
        }
        for line in &new.order.items {
            let product = products.get_mut(&line.product_id).unwrap();
            product.stock = Stock::on_hand(product.stock.get() - i64::from(line.quantity.get()))
                .map_err(|_| CreateOrderError::Store(StoreError::Transient))?;
        }
        orders.insert(
            new.order.order_id,
            StoredOrder {
                order: new.order.clone(),
                request_hash: new.request_hash.map(str::to_owned),
            },
        );
        Ok(())
    }
}

impl CancelOrder for FakeStore {
    async fn cancel_order(
        &self,
        order: &Order,
        _event: &OrderEvent,
        not_restocked: &BTreeSet<ProductId>,
    ) -> Result<(), CancelOrderError> {
        if self.conflict() {
            return Err(CancelOrderError::StatusChanged);
        }
        let mut orders = self.orders.lock().unwrap();
        let stored = orders
            .get_mut(&order.order_id)
            .filter(|s| s.order.user_id == order.user_id && s.order.status.is_cancellable())
            .ok_or(CancelOrderError::StatusChanged)?;
        let mut products = self.products.lock().unwrap();
        let lines = || {
            order
                .items
                .iter()
                .filter(|l| !not_restocked.contains(&l.product_id))
        };
        let gone: Vec<ProductId> = lines()
            .filter(|l| !products.contains_key(&l.product_id))
            .map(|l| l.product_id.clone())
            .collect();
        if !gone.is_empty() {
            return Err(CancelOrderError::ProductGone(gone));
        }
        stored.order = order.clone();
        for line in lines() {
            if let Some(product) = products.get_mut(&line.product_id) {
                product.stock =
                    Stock::on_hand(product.stock.get() + i64::from(line.quantity.get()))
                        .expect("stock plus units is not negative");
            }
        }
        Ok(())
    }
}

impl EventInbox for FakeStore {
    async fn confirm(
        &self,
        consumer: &str,
        order_id: OrderId,
        event: &OrderEvent,
        at: DateTime<Utc>,
    ) -> Result<Applied<OrderStatus>, ApplyError> {
        if self
            .inbox
            .lock()
            .unwrap()
            .contains(&(consumer.to_owned(), event.id.clone()))
        {
            return Ok(Applied::Duplicate);
        }
        let status = match self.orders.lock().unwrap().get_mut(&order_id) {
            None => return Err(ApplyError::UnknownOrder(order_id)),
            Some(stored) if stored.order.status == OrderStatus::Created => {
                stored.order.status = OrderStatus::Confirmed;
                None
            }
            Some(stored) => Some(stored.order.status),
        };
        self.record(consumer, event, at).await?;
        Ok(status.map_or(Applied::Done, Applied::Skipped))
    }

    async fn record(
        &self,
        consumer: &str,
        event: &OrderEvent,
        _at: DateTime<Utc>,
    ) -> Result<Applied<OrderStatus>, ApplyError> {
        let key = (consumer.to_owned(), event.id.clone());
        Ok(if self.inbox.lock().unwrap().insert(key) {
            Applied::Done
        } else {
            Applied::Duplicate
        })
    }
}
